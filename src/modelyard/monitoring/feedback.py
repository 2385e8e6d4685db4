"""`modelyard feedback import`: labelled corrections from production, stored on their logged predictions.

A file is taken whole or not at all: every row must name a logged prediction of the model and, for a
classifier, one of its labels; the first row that does not is named in the error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.errors import DataError, UserError

COLUMNS = ("prediction_id", "label")


@dataclass
class ModelIdentity:
    """What feedback and monitoring need to know of a model without loading its weights."""

    name: str
    labels: list[str] | None
    path: Path
    version: str | None


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
    return ModelIdentity(manifest["name"], manifest.get("labels"), Path(path).resolve(), version)


def read_rows(path: Path) -> list[tuple[int, str, Any]]:
    """(line number, prediction_id, label) per row of a .csv/.tsv (header line 1) or .jsonl file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file", "give a .csv or .jsonl file with prediction_id,label")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
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
    frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}",
            "the header must name prediction_id and label",
        )
    return [(i + 2, row.prediction_id.strip(), row.label) for i, row in enumerate(frame.itertuples())]


def import_feedback(path: Path, model_ref: str) -> dict[str, Any]:
    """Check every row against the prediction log and the model's labels, then store them all."""
    from modelyard.serving.prediction_log import read_predictions, record_feedback

    model = identify(model_ref)
    rows = read_rows(Path(path))
    if not rows:
        raise DataError(f"{path}: no feedback rows")
    logged = set(read_predictions(model=model.name)["prediction_id"])
    labels = set(model.labels or [])
    for number, prediction_id, label in rows:
        where = f"{path}, line {number}"
        if prediction_id not in logged:
            raise UserError(
                f"{where}: unknown prediction_id {prediction_id!r}: no logged prediction of model "
                f"'{model.name}' has it; nothing was imported",
                "use the prediction_ids the server returned (they are in the prediction log)",
            )
        if labels and str(label) not in labels:
            raise UserError(
                f"{where}: label {label!r} is not one of the model's {len(labels)} labels; nothing was imported"
            )
    for _, prediction_id, label in rows:
        record_feedback(prediction_id, str(label) if labels else label)
    return {"imported": len(rows), "model": model.name, "file": str(path)}
