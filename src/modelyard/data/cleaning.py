"""Cleaning for labelled rows: empty, label-less and duplicate rows are counted and dropped, never silently."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from modelyard.data.blank import is_blank


@dataclass
class CleaningReport:
    rows_in: int = 0
    empty_input: int = 0
    missing_label: int = 0
    duplicates: int = 0
    conflicting_duplicates: int = 0
    rows_out: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        dropped = self.rows_in - self.rows_out
        return (
            f"{self.rows_in} rows, {dropped} dropped: {self.empty_input} empty, {self.missing_label} without "
            f"label, {self.duplicates} duplicates ({self.conflicting_duplicates} with conflicting labels)"
        )


def dropped_note(source: str, info: dict) -> list[str]:
    """`evaluate --data`'s note on the rows cleaning dropped from a file read as `{"cleaning", "summary"}`."""
    dropped = info["cleaning"].get("rows_out", 0) < info["cleaning"].get("rows_in", 0)
    return [f"{source}: {info['summary']}; the metrics score the rest"] if dropped else []


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | series.fillna("").astype(str).map(is_blank).astype(bool)  # astype(str) keeps NaN


def clean_labelled(frame: pd.DataFrame, input_col: str, label_col: str | None) -> tuple[pd.DataFrame, CleaningReport]:
    """Drop rows with an empty input or label and exact duplicates; a text seen with two labels keeps its first."""
    report = CleaningReport(rows_in=len(frame))
    empty = _blank(frame[input_col])
    report.empty_input = int(empty.sum())
    report.examples += [f"line {i}: empty {input_col}" for i in frame.index[empty][:5]]
    frame = frame[~empty]
    if label_col is not None:
        missing = _blank(frame[label_col])
        report.missing_label = int(missing.sum())
        report.examples += [f"line {i}: no {label_col}" for i in frame.index[missing][:5]]
        frame = frame[~missing]
    key = frame[input_col].astype(str).str.strip()
    dup = key.duplicated(keep="first")
    if label_col is not None and dup.any():
        labels = frame[label_col].astype(str)
        conflicting = key[dup].map(labels.groupby(key).nunique()).gt(1)
        report.conflicting_duplicates = int(conflicting.sum())
    report.duplicates = int(dup.sum())
    frame = frame[~dup]
    report.rows_out = len(frame)
    return frame, report
