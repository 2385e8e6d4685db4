"""Synthetic tables: learn a generator on a tabular config's data, write synthetic rows with the file's own
columns and types, and say how faithful (fidelity report) and how private (privacy report) they are."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from modelyard.config import Config
from modelyard.errors import DataError, UserError
from modelyard.fsutil import atomic_path, atomic_write_json, atomic_write_text, same_file
from modelyard.synthetic.fidelity import column_distances, correlation_difference, utility
from modelyard.synthetic.privacy import exact_copies, privacy_report
from modelyard.synthetic.report import render
from modelyard.synthetic.table import RealTable, read_real, to_file_form, to_model_form

Method = Literal["copula", "ctgan"]
METHODS: tuple[str, ...] = ("copula", "ctgan")
RESAMPLE_ROUNDS = 20
MAX_ROWS = 100_000_000  # rows per call: the table is generated in memory
SUFFIXES = (".csv", ".parquet")


@dataclass
class Synthesized:
    table: pd.DataFrame  # as written: the file's columns and types
    report: dict[str, Any]
    output: Path
    report_html: Path
    report_json: Path


def report_paths(output: Path) -> tuple[Path, Path]:
    stem = output.with_suffix("")
    return stem.with_name(stem.name + ".report.html"), stem.with_name(stem.name + ".report.json")


def _generator(method: str, seed: int, epochs: int | None, quiet: bool):
    from modelyard.synthetic.copula import GaussianCopula
    from modelyard.synthetic.gan import ConditionalGAN

    if method == "copula":
        return GaussianCopula(seed)
    return ConditionalGAN(epochs=epochs or 100, seed=seed, quiet=quiet)


def _fit(generator, table: RealTable) -> None:
    from modelyard.synthetic.copula import GaussianCopula

    if isinstance(generator, GaussianCopula):  # one copula per class of the label
        generator.fit(table.train, table.discrete, table.target, table.kind == "classification")
    else:
        generator.fit(table.train, table.discrete)


def _without_copies(generator, table: RealTable, rows: int, seed: int) -> tuple[pd.DataFrame, int, int]:
    """`rows` synthetic rows (file form) none of which equals a real row: copies are replaced by fresh samples;
    any left after RESAMPLE_ROUNDS are dropped. Returns the table, copies replaced, rows dropped."""
    real = pd.concat([table.train, table.holdout])
    kept: list[pd.DataFrame] = []
    replaced, missing = 0, rows
    for _ in range(RESAMPLE_ROUNDS):
        batch = to_file_form(generator.sample(missing), table, seed + len(kept))
        copies = exact_copies(to_model_form(batch, table.columns), real)
        kept.append(batch[~copies])
        replaced += int(copies.sum())
        missing = int(copies.sum())
        if not missing:
            break
    frame = pd.concat(kept, ignore_index=True)
    if frame.empty:
        raise DataError(
            f"every one of {replaced} generated rows equals a real row: the table has too few distinct value "
            "combinations to synthesise without copying people",
            "add columns with more distinct values, or do not share this table",
        )
    return to_file_form(to_model_form(frame, table.columns), table, seed), replaced - missing, missing


def synthesize(
    config: Config,
    rows: int,
    output: Path,
    method: str = "copula",
    seed: int = 42,
    epochs: int | None = None,
    quiet: bool = True,
) -> Synthesized:
    """Fit on the config's train (+ validation) rows, sample `rows`, write the table and both reports."""
    if not 1 <= rows <= MAX_ROWS:
        raise UserError(f"--rows must be between 1 and {MAX_ROWS:,}, not {rows:,}", "write a larger table in parts")
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'", f"choose one of: {', '.join(METHODS)}")
    if output.suffix.lower() not in SUFFIXES:
        raise UserError(f"{output}: the synthetic table is written as .csv or .parquet", "name a .csv or .parquet")
    data = config.data
    for source in (data.train, getattr(data, "validation", None), getattr(data, "test", None)):
        if source and same_file(output, source):
            raise UserError(f"--output {output} is the real table {source}: it would be replaced", "name a new file")
    started = time.perf_counter()
    table = read_real(config)
    generator = _generator(method, seed, epochs, quiet)
    _fit(generator, table)
    fitted = time.perf_counter() - started
    synthetic, replaced, dropped = _without_copies(generator, table, rows, seed)
    notes = list(table.notes)
    if replaced:
        notes.append(f"{replaced} generated rows equal to a real row were replaced by fresh samples")
    if dropped:
        notes.append(f"{dropped} rows still equal to real rows after {RESAMPLE_ROUNDS} rounds were dropped")
    model_form = to_model_form(synthetic, table.columns)
    report: dict[str, Any] = {
        "name": config.name,
        "method": method,
        "seed": seed,
        "rows": len(synthetic),
        "real_rows": len(table.train),
        "output": str(output),
        "seconds": {"fit": round(fitted, 2), "total": None},
        "columns": {c.name: c.kind for c in table.columns},
        "fidelity": {
            "columns": column_distances(table.train, model_form, table.discrete),
            "correlations": correlation_difference(table.train, model_form, table.discrete),
            "utility": utility(table, model_form, seed),
        },
        "privacy": {
            **privacy_report(table.train, table.holdout, model_form, table.discrete, seed),
            "copies_replaced": replaced,
            "rows_dropped": dropped,
        },
        "notes": notes,
    }
    report["seconds"]["total"] = round(time.perf_counter() - started, 2)
    _write_table(synthetic, output)
    html_path, json_path = report_paths(output)
    atomic_write_json(json_path, report)
    atomic_write_text(html_path, render(report))
    return Synthesized(synthetic, report, output, html_path, json_path)


def _write_table(frame: pd.DataFrame, output: Path) -> None:
    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
