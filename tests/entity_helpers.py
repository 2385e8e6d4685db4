"""Tiny real entity data (names and cities in template sentences, English and Chinese) and the config that trains
an entity extractor on it; shared by the token classification tests and the playground's browser test."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito"]
ZH_NAMES = ["张伟", "王芳", "李娜", "刘洋"]
ZH_CITIES = ["北京", "上海", "广州", "成都"]


def english_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        text = f"{name} flew to {city} today ."
        rows.append(
            {
                "text": text,
                "entities": [
                    {"start": 0, "end": len(name), "label": "PER"},
                    {"start": text.index(city), "end": text.index(city) + len(city), "label": "LOC"},
                ],
            }
        )
    return rows


def chinese_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name, city = rng.choice(ZH_NAMES), rng.choice(ZH_CITIES)
        text = f"昨天{name}去了{city}。"
        rows.append(
            {"text": text, "entities": [{"start": 2, "end": 4, "label": "PER"}, {"start": 6, "end": 8, "label": "LOC"}]}
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def tiny_config(folder: Path, rows, backbone: str, **train) -> Path:
    config = {
        "name": f"entities-{backbone}",
        "task": "token_classification",
        "data": {
            "train": write_jsonl(folder / "train.jsonl", rows(48, 0)),
            "validation": write_jsonl(folder / "validation.jsonl", rows(8, 1)),
            "test": write_jsonl(folder / "test.jsonl", rows(8, 2)),
        },
        "model": {"backbone": backbone},
        "train": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-4, "early_stopping": None, **train},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path
