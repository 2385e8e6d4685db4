"""`predict --input FILE --output FILE` for tables: streamed, resumable, with a progress bar in rows/s; or on Ray
with `--engine ray`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Literal

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from modelyard.commands.console import STATE, err, warn
from modelyard.config import FormatOptions
from modelyard.predict_io import Unscored, skipped_rows

Engine = Literal["local", "ray"]


class RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


def streams(model, top_k: int) -> bool:
    """Whether a file is scored chunk by chunk: one answer per row (frame-scoring learners, or tasks that read
    one text column) at the default top-k; other tasks read their whole file at once."""
    one_per_row = hasattr(model.learner, "predict_frame") or not hasattr(model.task, "inputs_from_frame")
    return one_per_row and top_k == 1


def score(
    model, source: Path, output: Path, engine: Engine, workers: int, chunk_rows: int, fmt: FormatOptions, top_k: int
) -> None:
    """Score the table (a text file read by `fmt`) into `output`, showing progress (hidden with -q), then print
    what was written. `top_k` above 1 reaches Ray only: a local run streams at top-1 (`streams`)."""
    from modelyard.batch import score_file, score_file_ray

    bar = Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), RowsPerSecond(), TimeRemainingColumn(), console=err
    )
    task = None

    def on_progress(done: int, total: int | None) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("scoring", total=total, completed=done)
        else:
            bar.update(task, completed=done)

    with nullcontext() if STATE["quiet"] else bar:
        if engine == "ray":
            done = score_file_ray(model.path, source, output, workers, chunk_rows, on_progress, warn, top_k)
        else:
            done = score_file(model, source, output, chunk_rows, warn, on_progress, fmt)
    resumed = f", {done['resumed_rows']:,} of them from the stopped run" if done.get("resumed_rows") else ""
    speed = f"{done['rows_per_second']:,.0f} rows/s"
    err.print(f"wrote {done['rows']:,} predictions to {escape(str(output))}{resumed} ({speed})")
    if done.get("skipped"):
        warn(skipped_rows(source, done["skipped"], done["first_skipped"]))
    if done.get("unscored", {}).get("rows"):
        unscored = done["unscored"]
        warn(Unscored(unscored["rows"], unscored["first"], unscored["unit"]).message(source))
    for kind, what in (("wrong_type", "values of the wrong type"), ("unseen", "unseen categories")):
        for column, found in done.get("schema", {}).get(kind, {}).items():
            warn(f"{column}: {found['rows']} rows with {what} (first rows {found['first_rows']})")
