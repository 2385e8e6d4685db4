"""Label sets for multi-label data: one cell holds several labels, split on a separator ("anger|joy") or written
as a list (a JSON array in JSONL, or the text `["anger", "joy"]` in CSV). Checked here so that a wrong separator
is caught before training, not discovered as thousands of made-up labels such as "anger;joy"."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from typing import Any

import pandas as pd

from modelyard.errors import DataError

OTHER_SEPARATORS = ("|", ";", ",", "/", "+")
EXAMPLES = 3


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays
        return False


def parse_cell(value: Any, separator: str) -> tuple[str, ...] | None:
    """The labels of one cell, sorted and without duplicates; None for a missing cell, () for an empty list."""
    if _is_missing(value):
        return None
    if isinstance(value, str) and value.strip().startswith("["):
        with contextlib.suppress(json.JSONDecodeError):  # not JSON: split on the separator like any text
            value = json.loads(value)
    if isinstance(value, list | tuple):
        items = [str(v).strip() for v in value if not _is_missing(v)]
    else:
        items = [part.strip() for part in str(value).split(separator)]
    return tuple(sorted({item for item in items if item}))


def parse_column(column: pd.Series, separator: str, where: str, column_name: str) -> pd.Series:
    """Every cell's label set (None where the cell is missing); a DataError when the separator looks wrong."""
    sets = column.map(lambda v: parse_cell(v, separator))
    _check_separator(column, sets, separator, where, column_name)
    _check_combinations(sets, separator, where, column_name)
    bad = [(line, label) for line, labels in sets.items() if labels for label in labels if separator in label]
    if bad:  # only list cells can hold the separator inside a label
        line, label = bad[0]
        raise DataError(
            f"{where}: line {line}: label {label!r} in column '{column_name}' contains the label separator "
            f"{separator!r}",
            "set data.label_separator to a character no label contains",
        )
    return sets


def _check_separator(column: pd.Series, sets: pd.Series, separator: str, where: str, column_name: str) -> None:
    """Refuse a separator that splits nothing while another one splits many cells: the labels would be read as
    combinations ("anger;joy" as one label) and the model would learn the wrong task."""
    texts = column[column.map(lambda v: isinstance(v, str) and not v.strip().startswith("["))].astype(str)
    if texts.empty or texts.str.contains(separator, regex=False).any():
        return
    singles = Counter(label for labels in sets.dropna() if len(labels) == 1 for label in labels)
    for other in (s for s in OTHER_SEPARATORS if s != separator):
        split = texts[texts.str.contains(other, regex=False)]
        parts = {p.strip() for cell in split for p in cell.split(other) if p.strip()}
        # the pieces are labels seen alone elsewhere: a separator, not punctuation inside label names
        if len(split) >= max(2, 0.01 * len(texts)) and parts and sum(p in singles for p in parts) >= 0.5 * len(parts):
            shown = "; ".join(f"line {line}: {cell!r}" for line, cell in split.head(EXAMPLES).items())
            raise DataError(
                f"{where}: column '{column_name}' never contains the label separator {separator!r}, but "
                f"{len(split)} of {len(texts)} cells contain {other!r} ({shown})",
                f"set data.label_separator: {other!r} (or write each row's labels as a JSON list)",
            )


def _check_combinations(sets: pd.Series, separator: str, where: str, column_name: str) -> None:
    """Refuse a label made of other labels of the column joined by another common separator ("admiration, joy"
    beside "admiration" and "joy"): cells written with another separator than the rest, each read as a made-up
    label the model would learn as a class of its own."""
    known = set(label_counts(sets.dropna()))
    joined = {label: other for label in known if (other := _joined_by(label, known, separator))}
    if not joined:
        return
    line, label = next((line, label) for line, labels in sets.dropna().items() for label in labels if label in joined)
    raise DataError(
        f"{where}: line {line}: label {label!r} in column '{column_name}' is labels joined by {joined[label]!r}, "
        f"not by the label separator {separator!r} ({len(joined)} such label{'s' if len(joined) > 1 else ''})",
        f"join every cell's labels with data.label_separator ({separator!r}) or write them as a JSON list",
    )


def _joined_by(label: str, known: set[str], separator: str) -> str | None:
    """The common separator (other than `separator`) that splits `label` into labels all in `known`, if any."""
    for other in OTHER_SEPARATORS:
        parts = [part.strip() for part in label.split(other)]
        if other != separator and len(parts) > 1 and all(part in known for part in parts):
            return other
    return None


def label_counts(sets: pd.Series) -> Counter:
    """Rows per label."""
    return Counter(label for labels in sets for label in labels)
