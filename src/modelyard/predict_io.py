"""Inputs for `predict` from the command line or a file, and predictions written back beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.data.readers import read_table
from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_text

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _images(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        if path.is_dir():
            out += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            out.append(str(path))
        else:
            raise DataError(f"image not found: {path}")
    if not out:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, paths))}")
    return out


def read_inputs(
    model, texts: list[str] | None, images: list[Path] | None, file: Path | None
) -> tuple[list[Any], pd.DataFrame | None]:
    """The model's inputs and, for a file, the frame they came from (its columns are kept in the output)."""
    if texts is not None:
        return list(texts), None
    if images is not None:
        return _images(images), None
    frame, _ = read_table(file, model.config.data.format)
    task = model.task
    if hasattr(task, "inputs_from_frame"):
        return task.inputs_from_frame(frame, model.config), frame
    column = getattr(model.config.data, "text_column", None)
    if column not in frame.columns:
        if len(frame.columns) != 1:
            raise DataError(
                f"{file}: no column '{column}' and more than one column to choose from: "
                f"{', '.join(map(str, frame.columns))}"
            )
        column = frame.columns[0]
    return frame[column].astype(str).tolist(), frame


def write_predictions(path: Path, frame: pd.DataFrame | None, predictions: list[dict[str, Any]]) -> None:
    """.jsonl gets one JSON object per row; .csv gets the input columns plus label, score and probabilities."""
    rows = frame.reset_index(drop=True).to_dict("records") if frame is not None else [{} for _ in predictions]
    merged = [{**row, **pred} for row, pred in zip(rows, predictions, strict=True)]
    if path.suffix.lower() == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in merged))
        return
    flat = [
        {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v) for k, v in r.items()}
        for r in merged
    ]
    atomic_write_text(path, pd.DataFrame(flat).to_csv(index=False))
