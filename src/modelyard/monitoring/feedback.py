"""`modelyard feedback import`: labelled corrections from production, stored on their logged predictions.

A file is taken whole or not at all: every row must name a logged prediction of the model and, for a
classifier, one of its labels (for a regressor, a finite number, stored as one; for a multi-label model, a set
of its labels; for an entity extractor, spans of its entity types inside the logged text); the first row that
does not is named in the error.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.data.categories import category_text
from modelyard.data.jsonl import json_lines
from modelyard.errors import DataError, UserError
from modelyard.state import errors as state_errors
from modelyard.tasks import get_task

COLUMNS = ("prediction_id", "label")


@dataclass
class ModelIdentity:
    """What feedback and monitoring need to know of a model without loading its weights."""

    name: str
    labels: list[str] | None
    path: Path
    version: str | None
    generates_text: bool = False  # a chat model: feedback rates answers and becomes preference pairs


def identify(model_ref: str) -> ModelIdentity:
    """Name, labels and bundle folder of a bundle path or a `models:/NAME@ALIAS` URI (checksums verified)."""
    from modelyard.bundle import verify

    version = None
    if str(model_ref).startswith("models:/"):
        from modelyard.tracking.registry import resolve_model_uri

        path, version = resolve_model_uri(str(model_ref))
    else:
        path = Path(model_ref)
    manifest = verify(path)
    chat = bool(getattr(get_task(manifest["task"]), "generates_text", False))
    return ModelIdentity(manifest["name"], manifest.get("labels"), Path(path).resolve(), version, chat)


def label_check(path: Path) -> Callable[..., Any] | None:
    """The task's `feedback_label(config, label)` hook for the bundle at `path` (a regressor's: the label as a
    finite number, else a DataError naming the value), or None where labels are taken as they are. Given the
    logged input too, the check also makes the training row `retrain` would (`feedback_example`), so a correction
    that cannot become one (an entity span outside its text) is refused where it arrives, not at retrain."""
    from modelyard.loader import read_config

    config = read_config(path)
    task = get_task(config.task)
    hook, example = getattr(task, "feedback_label", None), getattr(task, "feedback_example", None)
    if hook is None:
        return None

    def check(label: Any, logged: Any = None) -> Any:
        label = hook(config, label)
        if example is not None and logged is not None:
            example(config, logged, label)
        return label

    return check


def model_label(label: Any, labels: Collection[str]) -> Any:
    """A classifier's plain correction as the model names it, matched as `evaluate` matches a file's labels
    (`as_known_labels`): a label it knows as written, else the label of the same category (1, 1.0 and "1.0" are
    the class "1"); one it does not know stays as given, for `unknown_label` to name."""
    text = str(label)
    if text in labels:
        return text
    return {category_text(known): known for known in labels}.get(category_text(label), label)


def unknown_label(label: Any, labels: Collection[str], structured: bool) -> Any | None:
    """The first label of a correction the model does not know, or None: the label itself, or for a structured
    correction (a task hook made a list: a label set, entity spans) each of its labels or its spans' labels."""
    items = label if structured and isinstance(label, list) else [label]
    for item in items:
        name = item.get("label") if structured and isinstance(item, dict) else item
        if str(name) not in labels:
            return name
    return None


def _text(path: Path) -> str:
    """The file as text; bytes that are not UTF-8 are an error naming their line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text ({err.reason})", "save the file as UTF-8") from None


def _csv_rows(path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line number where the record starts, fields) per non-blank record; a malformed record names its line."""
    reader = csv.reader(io.StringIO(_text(path), newline=""), delimiter=delimiter, strict=True)
    records, start = [], 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return records
        except csv.Error as err:
            raise DataError(
                f"{path}, line {start}: malformed {path.suffix[1:].upper()} ({err}); nothing was imported",
                "check the quoting on that line",
            ) from None
        if record:
            records.append((start, record))
        start = reader.line_num + 1


def read_rows(path: Path) -> list[tuple[int, str, Any]]:
    """(line number, prediction_id, label) per row of a .csv/.tsv (header line 1) or .jsonl file; an empty label,
    or one prediction labelled twice differently, is a DataError naming the lines (nothing is imported)."""
    rows = _file_rows(path)
    first: dict[str, tuple[int, Any]] = {}
    for number, prediction_id, label in rows:
        if label is None or (isinstance(label, str) and not label.strip()):
            raise DataError(f"{path}, line {number}: prediction {prediction_id!r} has an empty label")
        earlier = first.setdefault(prediction_id, (number, label))
        if earlier[1] != label:
            raise DataError(
                f"{path}, lines {earlier[0]} and {number}: prediction {prediction_id!r} is labelled "
                f"{earlier[1]!r} and {label!r}; nothing was imported",
                "keep the one label that is right",
            )
    return rows


def _file_rows(path: Path) -> list[tuple[int, str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file", "give a .csv or .jsonl file with prediction_id,label")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        for number, line in enumerate(json_lines(_text(path)), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
            if not isinstance(item, dict) or any(k not in item for k in COLUMNS):
                raise DataError(f"{path}, line {number}: expected an object with prediction_id and label")
            rows.append((number, str(item["prediction_id"]), item["label"]))
        return rows
    if suffix not in (".csv", ".tsv"):
        raise DataError(f"{path}: unsupported feedback file type '{suffix}'", "use .csv, .tsv or .jsonl")
    records = _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    header = records[0][1] if records else []
    twice = [c for c in COLUMNS if header.count(c) > 1]
    if twice:
        raise DataError(f"{path}: the header names column '{twice[0]}' more than once")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}",
            "the header must name prediction_id and label",
        )
    at = {name: header.index(name) for name in COLUMNS}
    rows = []
    for number, record in records[1:]:
        if len(record) != len(header):
            raise DataError(
                f"{path}, line {number}: {len(record)} fields where the header has {len(header)}; nothing was imported",
                "quote fields that contain the separator",
            )
        rows.append((number, record[at["prediction_id"]].strip(), record[at["label"]]))
    return rows


def import_feedback(path: Path, model_ref: str) -> dict[str, Any]:
    """Check every row against the prediction log and the model's labels, then store them all."""
    from modelyard.monitoring.prediction_log import connect, read_predictions, store_label

    model = identify(model_ref)
    if model.generates_text:
        from modelyard.monitoring.preferences import import_chat_feedback

        if not Path(path).is_file():
            raise DataError(f"{path}: no such file", "give a .jsonl file of chat feedback or preference pairs")
        return {**import_chat_feedback(Path(path), _text(Path(path)), model.name), "file": str(path)}
    rows = read_rows(Path(path))
    if not rows:
        raise DataError(f"{path}: no feedback rows")
    predictions = read_predictions(model=model.name)
    logged = dict(zip(predictions["prediction_id"], predictions["input"], strict=True))
    labels = set(model.labels or [])
    check = label_check(model.path)
    for index, (number, prediction_id, label) in enumerate(rows):
        where = f"{path}, line {number}"
        if prediction_id not in logged:
            raise UserError(
                f"{where}: unknown prediction_id {prediction_id!r}: no logged prediction of model "
                f"'{model.name}' has it; nothing was imported",
                "use the prediction_ids the server returned (they are in the prediction log)",
            )
        if check is not None:
            try:
                logged_input = logged[prediction_id]
                label = check(label, json.loads(logged_input) if isinstance(logged_input, str) else None)
            except UserError as err:
                raise DataError(f"{where}: {err.message}; nothing was imported", err.hint) from None
            rows[index] = (number, prediction_id, label)
        elif labels:
            label = model_label(label, labels)
            rows[index] = (number, prediction_id, label)
        if labels and (unknown := unknown_label(label, labels, check is not None)) is not None:
            raise UserError(
                f"{where}: label {unknown!r} is not one of the model's {len(labels)} labels; nothing was imported",
                f"the model's labels: {', '.join(sorted(labels)[:10])}{', ...' if len(labels) > 10 else ''}",
            )
    conn = connect()
    try:
        with conn:  # one transaction: a row that cannot be stored rolls back every row stored before it
            for number, prediction_id, label in rows:
                try:
                    stored = store_label(conn, prediction_id, str(label) if labels and check is None else label)
                except state_errors() as err:
                    stored, problem = False, f"the label could not be stored ({err})"
                else:
                    problem = f"prediction {prediction_id!r} left the log during the import"
                if not stored:
                    raise UserError(f"{path}, line {number}: {problem}; nothing was imported")
    finally:
        conn.close()
    return {"imported": len(rows), "model": model.name, "file": str(path)}
