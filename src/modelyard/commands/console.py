"""What the command line prints: the shared stderr console, the global flags, and the reports every command that
trains shows (data report, warnings, results table)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

err = Console(stderr=True)
STATE = {"debug": False, "quiet": False}
MISSING = "–"  # a results cell for a metric its column does not have (a baseline scores fewer): not a score of nan


def quiet_mode(own: bool = False) -> bool:
    """Whether -q is on: the global `modelyard -q`, or the -q that index, synthesize and distill also take after
    the command (kept for scripts that use it); either turns on the same switch for everything the command prints."""
    STATE["quiet"] = STATE["quiet"] or own
    return STATE["quiet"]


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def data_report(data) -> None:
    """The validation report, short enough to read: sizes, labels, lengths, coverage; then its warnings, which
    -q does not hide (rows dropped, labels missing from a split change what the numbers mean)."""
    from modelyard.training.distributed import is_main_process

    if not is_main_process():
        return
    if not STATE["quiet"]:
        _report_summary(data.report)
    for warning in data.warnings:
        warn(warning)


def _report_summary(report: dict) -> None:
    """Sizes, labels, lengths, coverage: the part of the data report -q hides."""
    splits = report.get("splits", report.get("split"))  # recommendation reports its one leave-last-out `split`
    err.print(f"[bold]splits[/] {escape(str(splits))}")  # data values (names, labels) are escaped:
    for note in report.get("split_notes", []):  # Rich markup in them prints as written
        err.print(f"  {escape(note)}")
    for name, info in report.get("files", {}).items():
        if "summary" in info:
            err.print(f"[bold]{name}[/] {escape(str(info['read']['file']))}: {escape(info['summary'])}")
    shown = ("num_labels", "text_length_chars", "cjk_share", "tokenizer", "sizes", "backbone", "encoders", "leakage")
    for key in (*shown, "column_types", "dropped_columns", "imbalance", "domain_pretraining"):
        if key in report:
            err.print(f"[bold]{key}[/] {escape(str(report[key]))}")
    for choice in report.get("backbone_choice", []):
        err.print(f"[bold]backbone[/] {escape(choice['backbone'])}: {escape(choice['reason'])}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning[/] {escape(message)}", highlight=False, soft_wrap=True)  # one line per warning


def metrics_table(metrics: dict) -> None:
    if STATE["quiet"]:
        return
    # one row per metric, one column per model: tables report a dozen metrics, which no terminal fits side by side
    columns = {split: metrics[split] for split in ("validation", "test") if metrics.get(split)}
    columns |= {f"{name} (test)": r["test"] for name, r in metrics.get("baselines", {}).items() if r.get("test")}
    # the test split's metrics; with data.split.test: 0 there are none, and validation's are the results
    scores = metrics.get("test") or metrics.get("validation") or {}
    keys = [k for k, v in scores.items() if isinstance(v, int | float) and k != "samples"]
    table = Table(title="results")
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key in keys:
        table.add_row(key, *[_cell(scores.get(key)) for scores in columns.values()])
    err.print(table)
    t = metrics.get("train", {})
    if t.get("steps") == 0:  # a zero-shot model: a throughput over no training would be nonsense
        err.print("nothing was trained: the model is used as it is (zero-shot)")
    else:
        err.print(f"trained in {t.get('seconds')} s ({t.get('samples_per_second')} samples/s, {t.get('precision')})")


def _cell(value: Any) -> str:
    """Scores to 4 decimals; counts (images, boxes, rows) as the whole numbers they are."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return str(value) if isinstance(value, int) else f"{value:.4f}"
