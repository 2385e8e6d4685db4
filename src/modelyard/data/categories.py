"""One category or class label as every file format reads it. A CSV cell is text and a JSON number is not, and
pandas writes an integer column with a missing value as floats: 2, "2", " 2 ", 2.0 and "2.0" are one category "2"
everywhere (training, requests, feedback, scoring files); "02", "2.5" and "abc" stay as written."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_WHOLE_NUMBER = re.compile(r"(-?)(0|[1-9][0-9]*)\.0*")  # "2.0", "2.", "-2.00"; never "02.0" (a code, not a number)


def id_text(value: Any) -> str | None:
    """One id as the HTTP API takes it: trimmed text, a whole float as its integer ("50", not "50.0": JSON Lines
    rows of mixed requests, or one missing id, make pandas read integer ids as floats); None when absent (None,
    NaN, pandas' NA, blank). No pandas here: a server loads a text model's config (its label names) without it."""
    if value is None or type(value).__name__ == "NAType":
        return None
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        if np.isfinite(value) and float(value).is_integer():
            value = int(value)
    return str(value).strip() or None


def category_text(value: Any) -> str | None:
    """`value` as one category's text (`id_text`, and a whole number written "2.0" as "2"); None when absent."""
    text = id_text(value)
    if text is not None and (whole := _WHOLE_NUMBER.fullmatch(text)):
        sign, digits = whole.groups()
        return f"-{digits}" if sign and digits != "0" else digits
    return text


def as_known_labels(values: Any, labels: list[str]) -> Any:
    """A column of labels as a model names them: a label it knows stays; another whose category is one of its
    labels' becomes that label ("1" is the class "1.0" of a model trained before labels were read as categories,
    which kept "1.0" as written); the rest stay, for the caller to drop and name."""
    known, aliases = set(labels), {category_text(label): label for label in labels}
    return values.map(lambda v: v if v is None or str(v).strip() in known else aliases.get(category_text(v), v))
