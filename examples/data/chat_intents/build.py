"""Rebuild train.jsonl / test.jsonl: 10 BANKING77 intents as a chat task answered with the intent name.

Run from this folder: `python build.py`. Reads ../banking77 (CC BY 4.0, see ../banking77/ATTRIBUTION.md).
"""

import csv
import json
import random
from pathlib import Path

INTENTS = [
    "activate_my_card",
    "age_limit",
    "apple_pay_or_google_pay",
    "atm_support",
    "card_arrival",
    "cash_withdrawal_charge",
    "change_pin",
    "exchange_rate",
    "lost_or_stolen_card",
    "terminate_account",
]
SYSTEM = (
    "You route online-banking customer messages. Reply with exactly one intent name from this list: "
    + ", ".join(INTENTS)
    + "."
)
SOURCE = Path(__file__).resolve().parent.parent / "banking77"


def rows(name: str, per_intent: int) -> list[dict]:
    with open(SOURCE / name, encoding="utf-8", newline="") as f:
        data = [r for r in csv.DictReader(f) if r["category"] in INTENTS]
    random.Random(0).shuffle(data)
    out, counts = [], dict.fromkeys(INTENTS, 0)
    for r in data:
        if counts[r["category"]] < per_intent:
            counts[r["category"]] += 1
            out.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": r["text"].strip()},
                        {"role": "assistant", "content": r["category"]},
                    ]
                }
            )
    return out


for name, per_intent, target in (("train.csv", 30, "train.jsonl"), ("test.csv", 10, "test.jsonl")):
    with open(Path(__file__).resolve().parent / target, "w", encoding="utf-8") as f:
        for record in rows(name, per_intent):
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
