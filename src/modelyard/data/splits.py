"""Seeded, optionally stratified splits, and the sha256 fingerprint of each split."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from modelyard.config import SplitConfig
from modelyard.errors import DataError


def _can_stratify(labels: pd.Series, fraction: float) -> bool:
    counts = labels.value_counts()
    return counts.min() >= 2 and round(len(labels) * fraction) >= len(counts)


def carve(
    frame: pd.DataFrame, fraction: float, seed: int, labels: pd.Series | None
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Split off `fraction` of the rows; stratified by `labels` when every class can be represented."""
    stratify = labels if labels is not None and _can_stratify(labels, fraction) else None
    rest, part = train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)
    return rest, part, stratify is not None


def make_splits(
    train: pd.DataFrame,
    validation: pd.DataFrame | None,
    test: pd.DataFrame | None,
    cfg: SplitConfig,
    label_col: str | None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Use the given files where present; carve missing splits from train. Returns the splits and notes."""
    notes = []
    pieces = {"test": (test, cfg.test), "validation": (validation, cfg.validation)}
    out: dict[str, pd.DataFrame] = {}
    for name, (given, fraction) in pieces.items():
        if given is not None:
            out[name] = given
            continue
        if fraction <= 0:
            out[name] = train.iloc[0:0]
            continue
        share = fraction if name == "test" else fraction / (1 - (cfg.test if test is None else 0))
        labels = train[label_col] if (cfg.stratify and label_col) else None
        if math.ceil(len(train) * share) >= len(train):  # train_test_split's size of the carved part
            raise DataError(
                f"data.split.{name}={fraction:g}: {len(train)} rows are too few to carve it and keep rows to train on",
                "give more rows, or lower data.split.validation / data.split.test",
            )
        train, out[name], stratified = carve(train, share, cfg.seed, labels)
        how = "stratified" if stratified else "random"
        notes.append(f"{name}: {len(out[name])} rows carved from train ({how}, seed {cfg.seed})")
        if cfg.stratify and label_col and not stratified:
            notes.append(f"{name}: not stratified: some class has too few rows")
    out["train"] = train
    return {k: out[k] for k in ("train", "validation", "test")}, notes


def _cell_text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _as_text(column: pd.Series) -> pd.Series:
    """Each cell as text: what `astype(str)` writes, but missing cells (which it keeps missing) empty and bytes
    (which it would decode as UTF-8) in hex."""
    return column.astype(str).fillna("") if column.dtype != object else column.map(_cell_text)


def fingerprint(frame: pd.DataFrame, columns: list[str]) -> dict:
    """sha256 over the split's rows in a canonical form (column order fixed, one JSON-ish line per row; a missing
    value as an empty field, as CSV files hold it; bytes as hex)."""
    h = hashlib.sha256()
    cells = pd.DataFrame({c: _as_text(frame[c]) for c in columns}, index=frame.index)
    for row in cells.itertuples(index=False, name=None):
        h.update("\x1f".join(row).encode("utf-8"))
        h.update(b"\n")
    return {"sha256": h.hexdigest(), "rows": len(frame)}


def changed_splits(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The splits whose fingerprint now differs from the one `recorded` at training (a bundle manifest's `data`)."""
    return [
        split
        for split, info in recorded.items()
        if isinstance(info, dict) and info.get("sha256") and (now.get(split) or {}).get("sha256") != info["sha256"]
    ]
