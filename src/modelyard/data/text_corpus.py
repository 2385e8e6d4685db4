"""Reading language-model data: plain-text corpora (documents) and chat / prompt-completion examples.

A `.txt` file is one document; a folder holds several files; JSONL (or a JSON array) has one record per line,
either a text field (a string, or a list of strings joined by newlines, such as a poem's `paragraphs`) or
OpenAI-style chat `{"messages": [...]}` / `{"prompt", "completion"}` examples.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.data.jsonl import json_lines
from modelyard.errors import DataError

SUFFIXES = (".txt", ".jsonl", ".json")
ROLES = {"system", "user", "assistant"}


@dataclass
class Fields:
    text: str = "text"
    messages: str = "messages"
    prompt: str = "prompt"
    completion: str = "completion"
    passages: str = "passages"  # optional: retrieved passages an answer should stay faithful to


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(f"data file not found: {path}", "check data.train / data.validation / data.test")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"{path}: the folder has no {', '.join(SUFFIXES)} files")
    return files


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) pairs of a JSON array or a JSONL file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 (byte {err.start})", "save the file as UTF-8") from None
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            return [(f"{path}: item {i}", r) for i, r in enumerate(json.loads(text))]
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    records = []
    for lineno, line in enumerate(json_lines(text), 1):
        if line.strip():
            try:
                records.append((f"{path}: line {lineno}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}: line {lineno}: not valid JSON ({err.msg})",
                    "JSONL holds one JSON object per line",
                ) from None
    return records


def chat_messages(where: str, value: Any) -> list[dict[str, str]]:
    """A non-empty list of {role, content} messages, each checked."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {i} needs a role ({', '.join(sorted(ROLES))}) and a string content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def prompt_messages(where: str, value: Any) -> list[dict[str, str]]:
    """A chat to answer from a data row's messages (a list; Parquet: an array; CSV: its JSON text): a final
    assistant turn is the row's reference answer, left out so the model writes its own."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: 'messages' is neither a list nor its JSON text") from None
    messages = chat_messages(where, value.tolist() if hasattr(value, "tolist") else value)
    if messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages:
        raise DataError(f"{where}: 'messages' holds only an assistant answer: no message for the model to answer")
    return messages


def _message_list(where: str, value: Any) -> list[dict[str, str]]:
    out = chat_messages(where, value)
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(f"{where}: no assistant message to learn from", "end each example with the answer")
    return out


def _retrieval_context(where: str, record: dict, fields: Fields) -> dict[str, list[str]]:
    """The record's retrieval context, each checked to be a list of strings: `passages` (the retrieved texts),
    `retrieved_ids` (what the retriever returned, best first) and `relevant_ids` (the gold ones)."""
    found = {}
    for key, name in (
        ("passages", fields.passages),
        ("retrieved_ids", "retrieved_ids"),
        ("relevant_ids", "relevant_ids"),
    ):
        if name not in record:
            continue
        value = record[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(f"{where}: '{name}' must be a list of strings")
        found[key] = value
    return found


def _example(where: str, record: Any, fields: Fields) -> dict | str:
    """A record as chat messages ({"messages": [...]}) or as a text document (str)."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object")
    if fields.messages in record:
        return {"messages": _message_list(where, record[fields.messages]), **_retrieval_context(where, record, fields)}
    if fields.prompt in record:
        prompt, completion = record[fields.prompt], record.get(fields.completion)
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DataError(f"{where}: '{fields.prompt}' and '{fields.completion}' must both be strings")
        chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        return {"messages": chat, **_retrieval_context(where, record, fields)}
    value = record.get(fields.text)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    raise DataError(
        f"{where}: no '{fields.text}' text (nor '{fields.messages}' or '{fields.prompt}')",
        f"set data.text_field to the field holding the text; this record has: {', '.join(record)}",
    )


def read(path: str | Path, fields: Fields, max_rows: int | None = None) -> list[str | dict]:
    """Documents (str) and/or chat examples ({"messages": [...]}) from a file or a folder."""
    return [item for _, item in read_located(path, fields, max_rows)]


def read_located(path: str | Path, fields: Fields, max_rows: int | None = None) -> list[tuple[str, str | dict]]:
    """`read`'s items, each with where it comes from ("FILE: line N", or the .txt file), for messages; at most
    `max_rows` records, and of a .txt file its first `max_rows` lines."""
    items: list[tuple[str, str | dict]] = []
    for file in _files(Path(path)):
        if file.suffix.lower() == ".txt":
            try:
                text = file.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as err:
                raise DataError(f"{file}: not valid UTF-8 (byte {err.start})", "save the file as UTF-8") from None
            if max_rows is not None:  # a plain-text corpus is one document: its rows are its lines
                text = "".join(text.splitlines(keepends=True)[:max_rows])
            items.append((str(file), text))
        else:
            items += [(where, _example(where, r, fields)) for where, r in _records(file)]
        if max_rows is not None and len(items) >= max_rows:
            return items[:max_rows]
    if not any(item for _, item in items):
        raise DataError(f"{path}: no text found")
    return items


def kind(items: list[str | dict], places: list[str] | None = None) -> str:
    """'chat' when the records are examples to answer, 'corpus' when they are text to model. Mixed records are a
    DataError naming (by `places`, each item's "FILE: line N") the first of the fewer kind."""
    chats = sum(isinstance(i, dict) for i in items)
    if chats and chats != len(items):
        odd = next(i for i, item in enumerate(items) if isinstance(item, dict) == (chats * 2 < len(items)))
        where = f"{places[odd]}: " if places else ""
        raise DataError(
            f"{where}mixed data: {chats} chat examples and {len(items) - chats} plain texts (this one is "
            f"{'a chat example' if isinstance(items[odd], dict) else 'a plain text'})",
            "use one kind per data set",
        )
    return "chat" if chats else "corpus"


def _cut_text(text: str, fraction: float) -> tuple[str, str]:
    """Split a single document at the line break nearest to `1 - fraction` of its length."""
    at = int(len(text) * (1 - fraction))
    newline = text.find("\n", at)
    at = newline + 1 if 0 <= newline < at + 1000 else at
    return text[:at], text[at:]


def split(items: list[str | dict], validation: float, test: float, seed: int) -> dict[str, list]:
    """Corpus: contiguous blocks from the end (test last, then validation), so no window straddles two splits.
    Chat examples are independent: a seeded random split."""
    if kind(items) == "chat":
        return {name: [items[i] for i in idx] for name, idx in chat_split(len(items), validation, test, seed).items()}
    if len(items) == 1:
        out, rest = {}, items[0]
        for name, fraction in (("test", test), ("validation", validation / (1 - test) if test < 1 else 0)):
            rest, part = _cut_text(rest, fraction) if fraction > 0 else (rest, "")
            out[name] = [part] if part else []
        return {"train": [rest], "validation": out["validation"], "test": out["test"]}
    n = len(items)
    n_test, n_val = round(n * test), round(n * validation)
    return {
        "train": items[: n - n_test - n_val],
        "validation": items[n - n_test - n_val : n - n_test],
        "test": items[n - n_test :],
    }


def chat_split(n: int, validation: float, test: float, seed: int) -> dict[str, list[int]]:
    """The positions of `n` chat examples in each split: a seeded random split, each split in file order."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test, n_val = round(n * test), round(n * validation)
    return {
        "test": sorted(order[:n_test]),
        "validation": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def fingerprint(items: list[str | dict]) -> dict[str, Any]:
    h = hashlib.sha256()
    for item in items:
        h.update(json.dumps(item, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return {"sha256": h.hexdigest(), "rows": len(items)}


def render_plain(messages: list[dict[str, str]]) -> str:
    """Chat as plain text for models without a chat template (our GPT): one `role: content` line each."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)
