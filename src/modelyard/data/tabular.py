"""Tables of mixed columns: type inference, the data checks a risk team asks for, and splits (stratified or by time).

Types are inferred from the values (CSV cells arrive as strings) and can be overridden per column in the config;
ID-like and constant columns are dropped and named; missing values, rare categories, target leakage (one column
that predicts the label almost perfectly on held-out rows) and class imbalance are reported, never hidden.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelyard.errors import DataError

ColumnType = Literal["numeric", "categorical", "boolean", "date", "text"]
TYPES: tuple[str, ...] = ("numeric", "categorical", "boolean", "date", "text")
TRUE = {"true", "t", "yes", "y", "1", "1.0"}
FALSE = {"false", "f", "no", "n", "0", "0.0"}
RARE_SHARE = 0.01  # a category seen in fewer than 1% of training rows (and < 10 rows) is "rare"
RARE_ROWS = 10
LEAK_AUC = 0.98  # one column alone ranking the label this well on held-out rows is almost surely a leak
LEAK_R2 = 0.98
LEAK_BINS = 50
ID_UNIQUE = 0.99
PROFILE_ROWS = 20_000


def _strings(values: pd.Series) -> pd.Series:
    return values.dropna().astype(str).str.strip().loc[lambda s: s != ""]


def infer_type(values: pd.Series) -> ColumnType:
    """numeric, boolean, date, text or categorical, judged on the non-empty values."""
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    sample = _strings(values.head(PROFILE_ROWS))
    if sample.empty:
        return "numeric"
    lowered = set(sample.str.lower().unique()[:3])
    if len(lowered) == 2 and lowered <= TRUE | FALSE and bool(lowered & TRUE) and bool(lowered & FALSE):
        return "boolean"
    if pd.api.types.is_numeric_dtype(values) or pd.to_numeric(sample, errors="coerce").notna().mean() >= 0.98:
        return "numeric"
    if sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).mean() >= 0.9:
        parsed = to_dates(sample)
        if parsed.notna().mean() >= 0.9:
            return "date"
    if sample.str.len().mean() > 30 and sample.str.contains(" ").mean() > 0.5 and sample.nunique() > len(sample) / 2:
        return "text"
    return "categorical"


def _plain(value: Any) -> Any:
    """A cell as `pd.to_numeric` takes it: text stripped, and an integer beyond float range (JSON allows any) as
    NaN instead of an OverflowError."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        return math.nan
    return value


def to_numeric(values: pd.Series) -> pd.Series:
    """Floats, NaN where a cell is not a finite number: text that does not parse, ±inf (a model would
    propagate it, and an MLP turn it into NaN), a datetime (not a quantity: its nanoseconds would pass)."""
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
        return pd.Series(np.nan, index=values.index, dtype=float)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype(float)
    else:
        numbers = pd.to_numeric(values.map(_plain), errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers))


def to_boolean(values: pd.Series) -> pd.Series:
    """1.0 / 0.0, NaN when empty or not a truth value."""
    text = values.map(lambda v: str(v).strip().lower() if v is not None and not pd.isna(v) else "")
    return text.map(lambda t: 1.0 if t in TRUE else 0.0 if t in FALSE else np.nan).astype(float)


def day_first(values: pd.Series) -> bool | None:
    """Whether the column's numeric dates (28/09/2021, 05.06.2021) put the day first: True when one has a first
    part above 12, False when one has a second part above 12, None when no value says (or values disagree)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return None
    parts = values.dropna().astype(str).str.extract(_NUMERIC_DATE).dropna().astype(int)
    if parts.empty:
        return None
    first, second = bool((parts[0] > 12).any()), bool((parts[1] > 12).any())
    return first if first != second else None


def to_dates(values: pd.Series, dayfirst: bool | None = None) -> pd.Series:
    """Timezone-naive times, NaT where a cell is not a date. A time with an offset keeps its local wall time (the
    hour and weekday where it happened); a column mixing offsets is put in UTC first, as pandas requires.
    Numeric dates take one day order for the whole column: `dayfirst`, else what the column's own values show
    (`day_first`); pandas alone reads each value on its own, 28/09/2021 day-first and 05/06/2021 month-first."""
    if dayfirst is None:
        dayfirst = day_first(values)
    if values.dtype.kind in "biuf" or values.dtype == object:  # pandas reads a number as nanoseconds since 1970
        values = values.map(_date_cell, na_action="ignore")
    if dayfirst:  # to month-first, pandas' order for 05/06/2021; ISO dates keep theirs (dayfirst=True would not)
        values = values.astype("string").str.replace(_NUMERIC_DATE, r"\2/\1/\3", regex=True)
    if not pd.api.types.is_datetime64_any_dtype(values):
        try:
            values = pd.to_datetime(values, errors="coerce", format="mixed")
        except ValueError:  # "Mixed timezones detected"
            values = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    return values.dt.tz_localize(None) if values.dt.tz is not None else values


_NUMERIC_DATE = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})\b"


def _date_cell(value: Any) -> Any:
    """A number as the text a file would hold (20210601 -> "20210601", a date; 20210601.0 too), so a JSON or
    Parquet number is read as its CSV cell is; a boolean is no date. Other cells pass as they are."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int | np.integer | float | np.floating) else value


def is_id_like(values: pd.Series, kind: str) -> bool:
    """Every value distinct and either an integer counter or a short code: an identifier, not a feature."""
    present = values.dropna()
    if len(present) < 50 or present.nunique() < ID_UNIQUE * len(present):
        return False
    if kind == "numeric":
        numbers = to_numeric(present).dropna()
        return bool(len(numbers) and (numbers == numbers.round()).all())
    return kind == "categorical"


def infer_types(frame: pd.DataFrame, target: str, overrides: dict[str, str], drop: list[str]) -> tuple[dict, dict]:
    """(column -> type for the features kept, column -> why dropped)."""
    for column in [*overrides, *drop]:
        if column not in frame.columns:
            raise DataError(
                f"data.column_types/drop_columns name '{column}', which the file does not have",
                f"columns: {', '.join(map(str, frame.columns))}",
            )
    types: dict[str, str] = {}
    dropped: dict[str, str] = {c: "listed in data.drop_columns" for c in drop}
    for column in frame.columns:
        if column == target or column in dropped:
            continue
        values = frame[column]
        kind = overrides.get(column) or infer_type(values)
        present = values.dropna().astype(str).str.strip()
        if (present == "").all():
            dropped[column] = "constant: empty in every row"
        elif present.nunique() <= 1:
            dropped[column] = "constant: one value in every row"
        elif column not in overrides and is_id_like(values, kind):
            dropped[column] = (
                f"ID-like: a distinct value in every row (if it is a feature, such as an amount, keep it with "
                f"data.column_types: {{{column}: {kind}}})"
            )
        else:
            types[column] = kind
    if not types:
        raise DataError("no feature columns are left after dropping ID-like and constant ones", str(dropped))
    return types, dropped


def _held_out_score(codes: np.ndarray, y: np.ndarray, kind: str) -> float:
    """How well per-value target means learnt on half the rows predict the other half (AUC, accuracy or R^2)."""
    rng = np.random.default_rng(0)
    half = rng.random(len(y)) < 0.5
    if half.sum() < 20 or (~half).sum() < 20:
        return 0.0
    if kind == "multiclass":
        table = pd.DataFrame({"c": codes[half], "y": y[half]}).groupby("c")["y"].agg(lambda s: s.mode().iloc[0])
        guess = pd.Series(codes[~half]).map(table)
        return float((guess.to_numpy() == y[~half]).mean())
    means = pd.Series(y[half]).groupby(codes[half]).mean()
    guess = pd.Series(codes[~half]).map(means).fillna(float(np.mean(y[half]))).to_numpy(dtype=float)
    if kind == "binary":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y[~half], guess)) if len(np.unique(y[~half])) == 2 else 0.0
    from sklearn.metrics import r2_score

    return float(r2_score(y[~half], guess))


def leakage(frame: pd.DataFrame, types: dict[str, str], y: np.ndarray, kind: str) -> dict[str, float]:
    """Columns that alone predict the target almost perfectly on held-out rows, with their score."""
    rows = frame.iloc[:PROFILE_ROWS]
    y = y[:PROFILE_ROWS]
    found = {}
    for column, ctype in types.items():
        values = rows[column]
        if ctype in ("numeric", "boolean", "date"):
            numbers = to_numeric(values) if ctype == "numeric" else to_boolean(values) if ctype == "boolean" else None
            if numbers is None:
                numbers = to_dates(values).astype("int64").astype(float)
            ranks = numbers.rank(pct=True).fillna(-1).to_numpy()
            codes = np.floor(ranks * LEAK_BINS).astype(int)
        else:
            codes = pd.factorize(values.astype(str))[0]
        score = _held_out_score(codes, y, kind)
        if score >= (LEAK_R2 if kind == "regression" else LEAK_AUC):
            found[column] = round(score, 4)
    return found


def column_profile(frame: pd.DataFrame, types: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per feature: type, missing share, distinct values, rare categories or the numeric range. A numeric cell is
    missing when the model reads it so: empty, or text such as `nan` or `inf` that is no finite number."""
    out = {}
    for column, ctype in types.items():
        values = frame[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        if ctype == "numeric":
            empty |= to_numeric(values).isna()
        entry: dict[str, Any] = {"type": ctype, "missing": round(float(empty.mean()), 4)}
        if ctype == "categorical":
            counts = values[~empty].astype(str).value_counts()
            rare = counts[(counts < RARE_SHARE * len(values)) & (counts < max(RARE_ROWS, 1))]
            entry |= {"distinct": len(counts), "rare_categories": [str(x) for x in rare.index[:10]]}
            entry["rare_count"] = len(rare)
        elif ctype == "numeric":
            numbers = to_numeric(values[~empty])
            if len(numbers):
                entry |= {
                    "min": float(numbers.min()),
                    "max": float(numbers.max()),
                    "mean": round(float(numbers.mean()), 4),
                }
        out[column] = entry
    return out


def imbalance(labels: pd.Series) -> dict[str, Any]:
    counts = labels.astype(str).value_counts()
    return {
        "counts": {str(k): int(v) for k, v in counts.items()},
        "ratio": round(float(counts.iloc[0] / max(counts.iloc[-1], 1)), 3),
        "minority": str(counts.index[-1]),
        "minority_share": round(float(counts.iloc[-1] / counts.sum()), 4),
    }


def time_splits(
    frame: pd.DataFrame, column: str, validation: float, test: float
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Oldest rows train, then validation, newest test: nothing from the future leaks into training."""
    if column not in frame.columns:
        raise DataError(f"data.split.by names '{column}', which the file does not have")
    dates = to_dates(frame[column]) if infer_type(frame[column]) == "date" else to_numeric(frame[column])
    if dates.isna().all():
        raise DataError(f"data.split.by: column '{column}' holds no dates or numbers to order rows by")
    order = np.argsort(dates.to_numpy(), kind="stable")
    ordered = frame.iloc[order]
    n = len(ordered)
    n_test, n_val = round(n * test), round(n * validation)
    parts = {
        "train": ordered.iloc[: n - n_test - n_val],
        "validation": ordered.iloc[n - n_test - n_val : n - n_test],
        "test": ordered.iloc[n - n_test :],
    }
    ranges = {k: (str(dates.loc[v.index].min()), str(dates.loc[v.index].max())) for k, v in parts.items() if len(v)}
    notes = [f"time-ordered split by '{column}': " + "; ".join(f"{k} {a} .. {b}" for k, (a, b) in ranges.items())]
    return parts, notes
