"""Training progress: a rich bar with loss, samples/s and ETA on a terminal; plain lines in a log (CI, nohup, a
pipe), where a live bar shows nothing until the end; silent with -q or off the main process."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINES_PER_RUN = 20  # a line every 5% of the steps ...
EVERY_SECONDS = 30.0  # ... or every 30 s, whichever comes first


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class LogProgress:
    """The rich bar's `add_task`/`update` for logs: one line with step, loss, rate, elapsed time and ETA every
    5% of the steps or 30 s (the rate and ETA count from where a resumed run started)."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.clock = stream, clock
        self.description, self.total, self.start, self.completed, self.fields = "", 1, 0, 0, {}
        self.began = self.last_time = clock()
        self.last_share, self.last_step = 0, 0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, kind, *_: Any) -> None:
        if kind is None and self.completed > self.last_step:  # stopped early: say where
            self._line()

    def add_task(self, description: str, total: int, completed: int = 0, **fields: Any) -> int:
        self.description, self.total, self.fields = description, max(1, total), fields
        self.start = self.completed = self.last_step = completed
        self.last_share = completed * LINES_PER_RUN // self.total
        self.began = self.last_time = self.clock()
        return 0

    def update(self, task_id: int, completed: int, **fields: Any) -> None:
        self.completed, self.fields = completed, {**self.fields, **fields}
        share = completed * LINES_PER_RUN // self.total
        if share > self.last_share or self.clock() - self.last_time >= EVERY_SECONDS:
            self.last_share = share
            self._line()

    def _line(self) -> None:
        now = self.clock()
        elapsed, done = now - self.began, self.completed - self.start
        eta = _clock(elapsed / done * (self.total - self.completed)) if done > 0 else "?"
        print(
            f"{self.description}: step {self.completed}/{self.total} ({100 * self.completed // self.total}%), "
            f"loss {self.fields.get('loss', float('nan')):.4f}, {self.fields.get('speed', 0.0):.1f} samples/s, "
            f"elapsed {_clock(elapsed)}, ETA {eta}",
            file=self.stream,
            flush=True,
        )
        self.last_time, self.last_step = now, self.completed


def training_progress(
    quiet: bool, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
) -> Progress | LogProgress:
    """The rich bar on a terminal, plain lines anywhere else (default stream: stderr)."""
    console = Console(file=stream) if stream is not None else Console(stderr=True)
    if not quiet and not console.is_terminal:
        return LogProgress(stream or sys.stderr, clock)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:.1f} samples/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
