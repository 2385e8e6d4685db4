"""Preference pairs from chat feedback: what `retrain` tunes a chat model on with DPO.

Feedback on a logged answer (a chat completion or a `/v1/predict` answer of a chat bundle) is stored in the
prediction log as {"rating": "up" | "down", "corrected": "better answer"} (either key may be absent; a correction
alone means "down"). Pairs are built per prompt (the same conversation, compared exactly):

- chosen answers: answers rated up and not corrected, and every correction (a "correction" that repeats the
  answer, whitespace aside, lets the answer stand: it is chosen, not rejected);
- rejected answers: answers rated down, and answers that were corrected (whatever their rating);
- every chosen answer pairs with every rejected one of the same prompt (a correction with the answer it corrects
  first), at most MAX_PAIRS_PER_PROMPT, identical texts never.

So a thumbs-down with a correction gives (chosen = correction, rejected = model answer); a thumbs-up answer pairs
with the thumbs-down answers to the same prompt; a lone thumbs-down without a correction, or a lone thumbs-up, gives
no pair (counted as `unpaired`). Pairs imported from a JSONL file ({"prompt" or "messages", "chosen", "rejected"})
are stored as given, in their own table of the state store.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelyard.data.jsonl import json_lines
from modelyard.errors import DataError

MAX_PAIRS_PER_PROMPT = 8
RATINGS = ("up", "down")
ROLES = ("system", "user", "assistant")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS preference_pairs (
    pair_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,          -- unix seconds when it was imported
    model TEXT NOT NULL,
    messages TEXT NOT NULL,    -- JSON: the conversation up to the user's last turn
    chosen TEXT NOT NULL,
    rejected TEXT NOT NULL,
    source TEXT NOT NULL       -- the imported file
);
CREATE INDEX IF NOT EXISTS preference_pairs_model ON preference_pairs (model, ts);
"""


def chat_feedback(rating: Any = None, corrected: Any = None) -> dict[str, str]:
    """The stored form of feedback on a chat answer; ValueError (a message for the user) when it is not one."""
    if rating is not None and rating not in RATINGS:
        raise ValueError(f"rating must be 'up' or 'down', not {str(rating)[:40]!r}")
    if corrected is not None and (not isinstance(corrected, str) or not corrected.strip()):
        raise ValueError("corrected must be a non-empty string: the answer the model should have given")
    if rating is None and corrected is None:
        raise ValueError("chat feedback needs a rating ('up' or 'down'), a corrected answer, or both")
    return {"rating": rating or "down", **({"corrected": corrected} if corrected is not None else {})}


def label_as_chat_feedback(label: Any) -> dict[str, str]:
    """A `label` given for a chat answer: {"rating", "corrected"}, "up"/"down", or the corrected answer's text."""
    if isinstance(label, dict):
        unknown = sorted(set(label) - {"rating", "corrected"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} in chat feedback (use rating and corrected)")
        return chat_feedback(label.get("rating"), label.get("corrected"))
    if label in RATINGS:
        return chat_feedback(label)
    return chat_feedback(None, label)


def conversation_problem(messages: Any) -> str | None:
    """Why `messages` cannot be a pair's prompt, None when it can: one rule for imported pairs and rated answers
    alike. A prompt is a non-empty list of {role, content} messages with text content, ending with a user turn
    that says something."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {role, content} objects"
    for index, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"messages[{index}] must be an object with role ({', '.join(ROLES)}) and text content"
    if messages[-1]["role"] != "user":
        return "the conversation must end with the user's turn (the answers follow it)"
    if not messages[-1]["content"].strip():
        return "the user's last turn is empty: there is nothing to answer"
    return None


def prompt_messages(value: Any) -> list[dict[str, str]] | None:
    """The conversation of a logged chat input (a user message, a message list, or {"messages": [...]}); None
    when it is no pair's prompt (`conversation_problem`)."""
    if isinstance(value, dict):
        value = value.get("messages")
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if conversation_problem(value) is not None:
        return None
    return [{"role": m["role"], "content": m["content"]} for m in value]


def answer_text(output: Any) -> str | None:
    """The answer of a logged chat output ({"text": ...} from /v1/predict and chat completions)."""
    if isinstance(output, dict):
        output = output.get("text", output.get("content"))
    return output if isinstance(output, str) else None


def build_pairs(rated: list[tuple[list[dict[str, str]], str, dict[str, str]]]) -> tuple[list[dict], dict[str, int]]:
    """Pairs from (prompt messages, model answer, feedback) rows, oldest first, by the rules above."""
    prompts: dict[str, dict[str, Any]] = {}
    for messages, answer, feedback in rated:
        key = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        entry = prompts.setdefault(key, {"messages": messages, "direct": [], "chosen": [], "rejected": []})
        corrected = feedback.get("corrected")
        if corrected is not None and corrected.strip() != answer.strip():
            entry["direct"].append((corrected, answer))
            entry["chosen"].append(corrected)
            entry["rejected"].append(answer)
        elif corrected is not None or feedback.get("rating") == "up":  # "corrected" to itself: the answer stood
            entry["chosen"].append(answer)
        elif feedback.get("rating") == "down" and corrected is None:
            entry["rejected"].append(answer)
    pairs, unpaired = [], 0
    for entry in prompts.values():
        candidates = entry["direct"] + [(c, r) for c in entry["chosen"] for r in entry["rejected"]]
        seen: set[tuple[str, str]] = set()
        for chosen, rejected in candidates:
            key = (chosen.strip(), rejected.strip())
            if key[0] == key[1] or key in seen or len(seen) >= MAX_PAIRS_PER_PROMPT:
                continue
            seen.add(key)
            pairs.append({"messages": entry["messages"], "chosen": chosen, "rejected": rejected})
        unpaired += 0 if seen else len(entry["chosen"]) + len(entry["rejected"])
    return pairs, {"rated_answers": len(rated), "prompts": len(prompts), "pairs": len(pairs), "unpaired": unpaired}


def pair_row(item: Any, where: str) -> dict[str, Any]:
    """A preference pair from one imported JSON object; DataError naming `where` (file and line) otherwise."""
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object with prompt (or messages), chosen and rejected")
    given = [k for k in ("prompt", "messages") if k in item]
    if len(given) != 1:
        raise DataError(f"{where}: give exactly one of 'prompt' (a user message) or 'messages' (a conversation)")
    if given[0] == "prompt":
        if not isinstance(item["prompt"], str) or not item["prompt"].strip():
            raise DataError(f"{where}: 'prompt' must be a non-empty string")
        messages = [{"role": "user", "content": item["prompt"]}]
    else:
        messages = item["messages"]
        problem = conversation_problem(messages)
        if problem:
            raise DataError(f"{where}: {problem}")
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    for side in ("chosen", "rejected"):
        if not isinstance(item.get(side), str) or not item[side].strip():
            raise DataError(f"{where}: '{side}' must be a non-empty string (an answer)")
    if item["chosen"].strip() == item["rejected"].strip():
        raise DataError(f"{where}: 'chosen' and 'rejected' are the same answer")
    unknown = sorted(set(item) - {"prompt", "messages", "chosen", "rejected"})
    if unknown:
        raise DataError(f"{where}: unknown field {unknown[0]!r}", "a pair has prompt or messages, chosen, rejected")
    return {"messages": messages, "chosen": item["chosen"], "rejected": item["rejected"]}


def ensure_table(conn: Any) -> None:
    conn.ensure(_SCHEMA)


def store_pairs(conn: Any, model: str, pairs: list[dict[str, Any]], source: str) -> None:
    """Insert imported pairs inside the caller's transaction (`ensure_table` first: SQLite's DDL commits)."""
    now = time.time()
    conn.executemany(
        "INSERT INTO preference_pairs (pair_id, ts, model, messages, chosen, rejected, source) VALUES (?,?,?,?,?,?,?)",
        [
            (
                uuid.uuid4().hex,
                now,
                model,
                json.dumps(p["messages"], ensure_ascii=False),
                p["chosen"],
                p["rejected"],
                source,
            )
            for p in pairs
        ],
    )


def collect_pairs(
    model: str, directory: Path | None = None, prompt: Callable[[list[dict[str, str]], Any], Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every preference pair of `model`: built from rated answers in the prediction log, then imported ones.
    `prompt(conversation, logged output)` gives the messages the model actually saw (an assistant's grounded
    prompt), or None when it generated no answer to pair (counted as `not_generated`)."""
    from modelyard.monitoring.prediction_log import open_log, read_predictions

    rows = read_predictions(model=model, directory=directory)
    rows = rows[rows["label"].notna()]
    rated, unusable, not_generated = [], 0, 0
    for value, output, label in zip(rows["input"], rows["output"], rows["label"], strict=True):
        messages = prompt_messages(json.loads(value)) if isinstance(value, str) else None
        logged = json.loads(output)
        answer = answer_text(logged)
        try:
            feedback = label_as_chat_feedback(json.loads(label))
        except ValueError:
            feedback = None
        if messages is None or answer is None or feedback is None:
            unusable += 1  # input not logged (--no-log-inputs, "store": false), no pair's prompt, not chat feedback
            continue
        if prompt is not None and (messages := prompt(messages, logged)) is None:
            not_generated += 1
            continue
        rated.append((messages, answer, feedback))
    pairs, report = build_pairs(rated)
    if prompt is not None:
        report["not_generated"] = not_generated
    conn = open_log(directory)
    try:
        ensure_table(conn)
        imported = conn.execute(
            "SELECT messages, chosen, rejected FROM preference_pairs WHERE model = ? ORDER BY ts", (model,)
        ).fetchall()
    finally:
        conn.close()
    pairs += [{"messages": json.loads(m), "chosen": c, "rejected": r} for m, c, r in imported]
    report["prompts"] = prompt_count(pairs)  # of the rated answers' pairs and the imported ones
    return pairs, {**report, "unusable_feedback": unusable, "imported_pairs": len(imported)}


def prompt_count(pairs: list[dict[str, Any]]) -> int:
    """How many different prompts (conversations) `pairs` are on."""
    return len({json.dumps(p["messages"], sort_keys=True, ensure_ascii=False) for p in pairs})


def import_chat_feedback(path: Path, text: str, model: str) -> dict[str, Any]:
    """A JSONL file of chat feedback: rows rating a logged answer ({"prediction_id", "rating", "corrected"}, or
    "label" as a dict / "up" / "down" / the corrected text) and preference pairs; all stored, or none."""
    from modelyard.monitoring.prediction_log import connect, read_predictions, store_label

    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise DataError(f"{path}: chat feedback is imported from JSONL", "one JSON object per line")
    logged = set(read_predictions(model=model)["prediction_id"])
    ratings, pairs = [], []
    for number, line in enumerate(json_lines(text), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg}); nothing was imported") from None
        if not isinstance(item, dict) or "prediction_id" not in item:
            pairs.append(pair_row(item, where))
            continue
        if str(item["prediction_id"]) not in logged:
            raise DataError(
                f"{where}: unknown prediction_id {item['prediction_id']!r}: no logged answer of model '{model}' has "
                "it; nothing was imported",
                "use the ids the server returned (chat completions: the response's id)",
            )
        try:
            if "label" in item:
                feedback = label_as_chat_feedback(item["label"])
            else:
                feedback = chat_feedback(item.get("rating"), item.get("corrected"))
        except ValueError as err:
            raise DataError(f"{where}: {err}; nothing was imported") from None
        ratings.append((str(item["prediction_id"]), feedback))
    if not ratings and not pairs:
        raise DataError(f"{path}: no feedback rows")
    conn = connect()
    try:
        ensure_table(conn)
        with conn:  # one transaction: the file is stored whole or not at all
            for prediction_id, feedback in ratings:
                if not store_label(conn, prediction_id, feedback):
                    raise DataError(f"{path}: prediction {prediction_id!r} left the log during the import")
            if pairs:
                store_pairs(conn, model, pairs, str(path))
    finally:
        conn.close()
    return {"imported": len(ratings) + len(pairs), "ratings": len(ratings), "pairs": len(pairs), "model": model}
