"""The table a synthesiser learns, read the way tabular tasks read it, and the way back to the file's own types.

Column types come from `modelyard.data.tabular` (inference plus `data.column_types`); the target is a column like
any other. Each column is kept in one of two forms the generators share: continuous (floats, NaN when missing:
numbers, and dates as days) or discrete (strings, None when missing: categories, booleans, a class label).
ID-like columns get fresh surrogate IDs (copying real identifiers would leak them); `data.drop_columns` and free
text are left out of the synthetic table, and the notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config import Config
from modelyard.data import tabular
from modelyard.data.categories import category_text
from modelyard.data.readers import read_table, require_columns
from modelyard.data.splits import make_splits
from modelyard.errors import ConfigError

TASKS = ("tabular_classification", "tabular_regression")
EPOCH = pd.Timestamp("1970-01-01")
MAX_DECIMALS = 6


@dataclass
class ColumnSpec:
    """How one column is modelled and written back."""

    name: str
    kind: str  # numeric | categorical | boolean | date | id | constant
    as_int: bool = False  # numeric: written without a decimal point (the file wrote "3", not "3.0")
    decimals: int = 0  # numeric: digits kept after the point
    days_only: bool = True  # date: every real value was at midnight
    value: Any = None  # constant: the one value
    missing: float = 0.0  # constant / id: share of empty cells
    dtype: str | None = None  # categorical, boolean, date: the typed column's dtype (Parquet), None for text

    @property
    def continuous(self) -> bool:
        return self.kind in ("numeric", "date")

    @property
    def modelled(self) -> bool:
        return self.kind in ("numeric", "date", "categorical", "boolean")


@dataclass
class RealTable:
    """The real rows (the generator's training rows and a holdout it never sees) in model form, and the specs."""

    columns: list[ColumnSpec]
    target: str
    kind: str  # classification | regression
    train: pd.DataFrame  # modelled columns only, model form
    holdout: pd.DataFrame
    order: list[str]  # the output's columns, in the file's order
    notes: list[str] = field(default_factory=list)

    @property
    def modelled(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.modelled]

    @property
    def discrete(self) -> list[str]:
        return [c.name for c in self.modelled if not c.continuous]


def _empty(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(str).str.strip() == "")


def _numeric_spec(name: str, values: pd.Series) -> ColumnSpec:
    present = values[~_empty(values)]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = present.astype(float)
        as_int = pd.api.types.is_integer_dtype(values) or bool((numbers == numbers.round()).all() and len(numbers))
        text = numbers.map(repr)
    else:
        text = present.astype(str).str.strip()
        as_int = not text.str.contains(r"[.eE]", regex=True).any()
    decimals = text.str.extract(r"\.(\d+)$")[0].str.rstrip("0").str.len().fillna(0)
    return ColumnSpec(name, "numeric", as_int=as_int, decimals=int(min(decimals.max() or 0, MAX_DECIMALS)))


def _category(values: pd.Series) -> pd.Series:
    """Strings as the file has them (1.0 and 1 are one category), None when empty."""
    return pd.Series([category_text(v) for v in values.to_numpy(dtype=object)], index=values.index, dtype=object)


def to_model_form(frame: pd.DataFrame, columns: list[ColumnSpec]) -> pd.DataFrame:
    """Modelled columns only: floats for continuous ones, strings (None when missing) for discrete ones."""
    out: dict[str, pd.Series] = {}  # Series keep their dtype: object columns hold None, not NaN
    for spec in columns:
        if not spec.modelled:
            continue
        values = frame[spec.name]
        if spec.kind == "numeric":
            out[spec.name] = tabular.to_numeric(values).astype(float)
        elif spec.kind == "date":
            dates = tabular.to_dates(values.where(~_empty(values), None))
            out[spec.name] = ((dates - EPOCH) / pd.Timedelta(days=1)).astype(float)
        else:
            out[spec.name] = _category(values)
    return pd.DataFrame(out, index=frame.index)


def _specs(frame: pd.DataFrame, config: Config, kind: str) -> tuple[list[ColumnSpec], list[str], list[str]]:
    data = config.data
    types, dropped = tabular.infer_types(frame, data.target_column, dict(data.column_types), list(data.drop_columns))
    types[data.target_column] = "categorical" if kind == "classification" else "numeric"
    specs, order, notes = [], [], []
    for name in frame.columns:
        values = frame[name]
        missing = float(_empty(values).mean())
        why = dropped.get(name, "")
        if why.startswith("listed"):
            notes.append(f"column '{name}' left out of the synthetic table: listed in data.drop_columns")
            continue
        if why.startswith("ID-like"):
            spec = ColumnSpec(name, "id", as_int=tabular.infer_type(values) == "numeric", missing=missing)
            notes.append(f"column '{name}' is ID-like: the synthetic rows get fresh surrogate IDs, not real ones")
        elif why.startswith("constant"):
            present = values[~_empty(values)]
            spec = ColumnSpec(name, "constant", value=present.iloc[0] if len(present) else None, missing=missing)
        elif types[name] == "text":
            notes.append(f"column '{name}' is free text, which is not synthesised: left out of the synthetic table")
            continue
        elif types[name] == "numeric":
            spec = _numeric_spec(name, values)
        elif types[name] == "date":
            dates = tabular.to_dates(values.where(~_empty(values), None)).dropna()
            spec = ColumnSpec(name, "date", days_only=bool((dates == dates.dt.normalize()).all()))
        else:
            spec = ColumnSpec(name, types[name])
        if spec.kind in ("categorical", "boolean", "date") and not pd.api.types.is_object_dtype(values):
            spec.dtype = None if pd.api.types.is_string_dtype(values) else str(values.dtype)
        specs.append(spec)
        order.append(name)
    return specs, order, notes


def _surrogate_personal(frame: pd.DataFrame, specs: list[ColumnSpec], config: Config) -> list[str]:
    """Columns the generator would copy values from (categories, numbers, constants) scanned with the config's
    PII detectors: one where at least half the rows hold personal data gets surrogate values like an ID column
    (an e-mail repeated on two rows is no ID, yet copying it leaks it); one with fewer is named in a note."""
    from modelyard.privacy.redact import from_config
    from modelyard.privacy.scan import scan_frame

    if not config.privacy.detectors or config.data.target_column not in frame.columns:
        return []
    copied = [
        s for s in specs if s.kind in ("categorical", "numeric", "constant") and s.name != config.data.target_column
    ]
    if not copied:
        return []
    found = scan_frame(frame[[s.name for s in copied]], from_config(config.privacy))
    notes = []
    for spec in copied:
        counts = found["columns"].get(spec.name)
        if not counts:
            continue
        rows, kinds = found["holding"][spec.name], ", ".join(counts)
        if rows * 2 >= found["rows"]:
            spec.kind, spec.as_int, spec.missing = "id", False, float(_empty(frame[spec.name]).mean())
            notes.append(
                f"column '{spec.name}' holds personal data ({kinds} in {rows} of {found['rows']} rows): the "
                "synthetic rows get surrogate values, not real ones"
            )
        else:
            notes.append(
                f"column '{spec.name}': {kinds} in {rows} of {found['rows']} rows, which the synthetic table may "
                "copy: list the column in data.drop_columns to leave it out"
            )
    return notes


def read_real(config: Config) -> RealTable:
    """The config's table split as tabular tasks split it: the generator learns from train + validation, and the
    test split is the real holdout that the fidelity (train-on-synthetic, test-on-real) and privacy (distance
    to closest record) reports compare against."""
    if config.task not in TASKS:
        raise ConfigError(
            f"synthesize reads the table of a tabular task; this config's task is '{config.task}'",
            f"use a config with task: {' or '.join(TASKS)}",
        )
    data = config.data
    kind = "classification" if config.task == "tabular_classification" else "regression"
    frames, notes = {}, []
    for which in ("train", "validation", "test"):
        path = getattr(data, which)
        if path:
            frame, _ = read_table(path, data.format, data.max_rows)
            require_columns(frame, {"target_column": data.target_column}, str(path))
            empty = _empty(frame[data.target_column])
            if empty.any():
                notes.append(f"{path}: {int(empty.sum())} rows without a target left out")
            frames[which] = frame[~empty]
    stratify = data.target_column if kind == "classification" else None
    splits, _ = make_splits(frames["train"], frames.get("validation"), frames.get("test"), data.split, stratify)
    learn = pd.concat([splits["train"], splits["validation"]])
    if len(learn) < 50 or len(splits["test"]) < 10:
        raise ConfigError(
            f"{data.train}: {len(learn)} rows to learn from and {len(splits['test'])} held out; "
            "synthesize needs at least 50 and 10",
            "give more rows, or set data.split.test so that some rows are held out",
        )
    specs, order, column_notes = _specs(learn, config, kind)
    column_notes += _surrogate_personal(learn, specs, config)
    train, holdout = to_model_form(learn, specs), to_model_form(splits["test"], specs)
    return RealTable(specs, data.target_column, kind, train, holdout, order, notes + column_notes)


def _typed(values: pd.Series, dtype: str | None) -> pd.Series:
    """Category strings back in the typed column's dtype (Parquet's bool or int codes); text stays text."""
    if dtype is None:
        return values
    if dtype in ("bool", "boolean"):
        flags = values.map({"True": True, "False": False, None: None}).astype("boolean")
        return flags.astype(bool) if dtype == "bool" and not flags.isna().any() else flags
    numbers = pd.to_numeric(values)
    if pd.api.types.is_integer_dtype(dtype):
        return numbers.astype(dtype if not numbers.isna().any() else "Int64")
    return numbers.astype(dtype)


def to_file_form(model: pd.DataFrame, table: RealTable, seed: int) -> pd.DataFrame:
    """The generator's output as the file's columns and types: integers stay integers, booleans booleans,
    dates dates, categories the file's own strings; empty cells where the generator says missing."""
    rng = np.random.default_rng(seed)
    n = len(model)
    out: dict[str, Any] = {}
    for spec in table.columns:
        if spec.kind == "id":
            ids = np.arange(1, n + 1)
            out[spec.name] = ids if spec.as_int else [f"synthetic-{i}" for i in ids]
        elif spec.kind == "constant":
            values = pd.Series([spec.value] * n, dtype=object)
            out[spec.name] = values.where(rng.random(n) >= spec.missing, None)
        elif spec.kind == "numeric":
            values = model[spec.name].astype(float).round(0 if spec.as_int else spec.decimals)
            out[spec.name] = values.astype("Int64") if spec.as_int and values.isna().any() else values
            if spec.as_int and not values.isna().any():
                out[spec.name] = values.astype("int64")
        elif spec.kind == "date":
            days = model[spec.name].astype(float)
            dates = EPOCH + pd.to_timedelta(days.round(0) if spec.days_only else days, unit="D")
            dates = dates.dt.round("s")
            out[spec.name] = dates.astype(spec.dtype) if spec.dtype else dates
        else:
            out[spec.name] = _typed(model[spec.name].astype(object), spec.dtype)
    return pd.DataFrame(out, index=range(n))[table.order]
