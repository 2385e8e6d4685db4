"""One category or class label as every file format reads it. A CSV cell is text and a JSON number is not, and
pandas writes an integer column with a missing value as floats: 2, "2", " 2 ", 2.0 and "2.0" are one category "2"
everywhere (training, requests, feedback, scoring files); "02", "2.5" and "abc" stay as written."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_WHOLE_NUMBER = re.compile(r"(-?)(0|[1-9][0-9]*)\.0*")  # "2.0", "2.", "-2.00"; never "02.0" (a code, not a number)


def category_text(value: Any) -> str | None:
    """`value` as one category's text; None when absent (None, NaN, pandas' NA, blank). No pandas here: a server
    loads a text model's config (its label names) without importing it."""
    if value is None or type(value).__name__ == "NAType":
        return None
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        if np.isfinite(value) and float(value).is_integer():
            value = int(value)
    text = str(value).strip() or None
    if text is not None and (whole := _WHOLE_NUMBER.fullmatch(text)):
        sign, digits = whole.groups()
        return f"-{digits}" if sign and digits != "0" else digits
    return text
