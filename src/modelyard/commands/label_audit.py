"""`modelyard validate CONFIG --audit-labels`: the training rows whose labels look wrong, printed and saved as CSV."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from modelyard.learners.label_noise import LabelNoiseResult, reliability_warning, write_csv

err = Console(stderr=True)
TEXT_WIDTH = 60


def show_audit(result: LabelNoiseResult, output: Path, top: int) -> None:
    """Print the `top` most suspicious rows (line, given and suggested label, confidence, text); write all to CSV."""
    rows = result.rows()
    write_csv(output, rows)
    summary = result.summary()
    err.print(f"[bold]suspected label errors[/]: {len(rows)} of {summary['rows']} training rows, most suspicious first")
    for row in rows[:top]:  # one line each, never cut: labels are what the reader acts on
        text = row["text"] if len(row["text"]) <= TEXT_WIDTH else row["text"][: TEXT_WIDTH - 1] + "…"
        err.print(
            f"{row['rank']:>4}. line {row['line']}: given {escape(row['given_label'])!r}, suggested "
            f"{escape(row['suggested_label'])!r} ({row['confidence']:.2f}): {escape(text)}",
            soft_wrap=True,
            highlight=False,
        )
    if len(rows) > top:
        err.print(f"      ... {len(rows) - top} more")
    err.print(
        f"{summary['method']} out-of-fold audit in {summary['seconds']} s; estimated noise rate "
        f"{summary['estimated_noise_rate']:.1%}; all {len(rows)} rows written to {escape(str(output))}",
        soft_wrap=True,
    )
    if note := reliability_warning(result):
        err.print(f"[yellow]warning[/] {escape(note)}", highlight=False, soft_wrap=True)
