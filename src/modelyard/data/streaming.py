"""Validation of data files too large to hold in memory: one streaming pass per file.

`modelyard validate --stream` reads each file in chunks (`readers.stream_table`) and keeps only what it counts:
rows read and skipped (by line), empty required values, the label distribution, a histogram of input lengths,
and one 64-bit hash of the input and one of the label per usable row for the duplicate count. Memory grows by
those 16 bytes a row, not with the size of the rows. Splits, fingerprints of the cleaned data and tokenizer
coverage need the whole table: `validate` without --stream computes them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config import FormatOptions
from modelyard.data.readers import require_columns, stream_table
from modelyard.errors import DataError
from modelyard.fsutil import sha256_file

SCAN_CHUNK_ROWS = 20_000  # parsed rows cost ~1 KB each while a chunk is checked: ~20 MB
MAX_LENGTH = 100_000  # longer inputs share the histogram's last bin
MAX_LABELS = 10_000  # beyond this the label column is not a set of classes; counting stops
EXAMPLES = 5


def data_columns(data: Any) -> tuple[dict[str, str], str | None]:
    """The columns a task's data config names (`*_column` keys that are set), and its label column if any."""
    columns = {
        key: value
        for key, value in data
        if key.endswith("_column") and isinstance(value, str) and value  # e.g. text_column, user_column
    }
    return columns, columns.get("label_column")


def _percentile(histogram: np.ndarray, q: float) -> int:
    cumulative = np.cumsum(histogram)
    return int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))


class _Duplicates:
    """Exact duplicates among the usable rows, as `clean_labelled` counts them (stripped input, first kept)."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, inputs: pd.DataFrame, labels: pd.Series | None) -> None:
        """`inputs` and `labels` already stripped."""
        self.keys.append(pd.util.hash_pandas_object(inputs, index=False).to_numpy())
        if labels is not None:
            self.labels.append(pd.util.hash_pandas_object(labels, index=False).to_numpy())

    def count(self) -> tuple[int, int]:
        """(duplicate rows, duplicate rows whose input also appears with another label); ~32 bytes a row at
        the peak, while sorting."""
        if not self.keys:
            return 0, 0
        keys = np.concatenate(self.keys)
        labels = np.concatenate(self.labels) if self.labels else np.zeros_like(keys)
        self.keys, self.labels = [], []
        order = np.lexsort((labels, keys))
        keys = keys[order]
        labels = labels[order]
        del order
        repeat = np.r_[False, keys[1:] == keys[:-1]]
        group = np.cumsum(~repeat) - 1  # (N,) group id of each row, groups of equal inputs
        changes = np.r_[False, repeat[1:] & (labels[1:] != labels[:-1])]
        mixed = np.bincount(group, weights=changes) > 0  # groups with more than one label
        return int(repeat.sum()), int((repeat & mixed[group]).sum())


def scan_file(
    path: str | Path,
    fmt: FormatOptions,
    columns: dict[str, str],
    label_column: str | None,
    chunk_rows: int = SCAN_CHUNK_ROWS,
) -> dict[str, Any]:
    """One pass over a data file: what `validate` reports about it, in memory bounded by one chunk of rows plus
    16 bytes per row (about 40 at the end, while the duplicates are sorted). Label counts include duplicates:
    which rows repeat another is known only once the whole file is read."""
    chunks, read = stream_table(path, fmt, chunk_rows)
    empty: Counter = Counter()
    examples: list[str] = []
    labels: Counter = Counter()
    lengths = np.zeros(MAX_LENGTH + 1, dtype=np.int64)
    duplicates = _Duplicates()
    inputs = [c for c in columns.values() if c != label_column]
    usable = 0
    for n, chunk in enumerate(chunks):
        if n == 0:
            require_columns(chunk, columns, str(path))
        keep = np.ones(len(chunk), dtype=bool)
        values = {column: chunk[column].astype(str).str.strip() for column in columns.values()}
        for key, column in columns.items():
            blank = (chunk[column].isna() | values[column].eq("")).to_numpy()
            empty[key] += int(blank.sum())
            if len(examples) < EXAMPLES and blank.any():
                examples += [f"line {i}: empty {column}" for i in chunk.index[blank][: EXAMPLES - len(examples)]]
            keep &= ~blank  # a row missing any named value is dropped, as the tasks' cleaning drops it
        usable += int(keep.sum())
        kept = pd.DataFrame({c: v[keep] for c, v in values.items()}) if values else chunk[keep]
        del chunk, values
        duplicates.add(kept[inputs] if inputs else kept, kept[label_column] if label_column else None)
        if inputs:
            size = kept[inputs[0]].str.len().clip(upper=MAX_LENGTH).to_numpy(dtype=np.int64)
            lengths += np.bincount(size, minlength=MAX_LENGTH + 1)
        if label_column and len(labels) <= MAX_LABELS:
            labels.update(kept[label_column].value_counts().to_dict())
    if read.rows == 0:  # no chunk came: the columns are still checked against the header
        require_columns(pd.DataFrame(columns=read.columns or []), columns, str(path))
    duplicated, conflicting = duplicates.count()
    out: dict[str, Any] = {
        "read": read.as_dict(),
        "sha256": sha256_file(Path(path)),
        "empty": dict(empty),
        "empty_examples": examples,
        "duplicates": duplicated,
        "conflicting_duplicates": conflicting,
        "usable_rows": usable - duplicated,
    }
    if lengths.any():
        out["length_chars"] = {
            "column": inputs[0],
            **{f"p{q}": _percentile(lengths, q / 100) for q in (5, 50, 95)},
            "max": int(np.flatnonzero(lengths)[-1]),
        }
    if label_column:
        out["labels"] = dict(labels.most_common()) if len(labels) <= MAX_LABELS else None
        out["num_labels"] = len(labels) if len(labels) <= MAX_LABELS else f"over {MAX_LABELS}"
    return out


def scan(data: Any, chunk_rows: int = SCAN_CHUNK_ROWS) -> dict[str, Any]:
    """Every data file a config names (train, validation, test), scanned in one streaming pass each."""
    columns, label_column = data_columns(data)
    files = {which: getattr(data, which) for which in ("train", "validation", "test") if getattr(data, which)}
    for path in files.values():
        if Path(path).is_dir():
            raise DataError(
                f"{path} is a folder: --stream checks data files (.csv .tsv .jsonl .parquet .txt)",
                "validate a folder (of images, audio, documents) without --stream",
            )
    scans = {which: scan_file(path, data.format, columns, label_column, chunk_rows) for which, path in files.items()}
    return {"mode": "stream", "files": scans}
