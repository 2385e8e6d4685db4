"""Off a terminal (CI logs, nohup, a pipe) training logs plain progress lines with step, loss, rate and ETA,
every 5% of the steps or 30 s, whichever comes first; on a terminal the rich bar stays; -q silences both."""

from __future__ import annotations

import io

from rich.progress import Progress

from modelyard.training.progress import training_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(steps: int, seconds_per_step: float, completed: int = 0) -> list[str]:
    clock, out = Clock(), io.StringIO()
    with training_progress(False, stream=out, clock=clock) as bar:
        task = bar.add_task("training", total=steps, completed=completed, loss=0.0, speed=0.0)
        for step in range(completed + 1, steps + 1):
            clock.now += seconds_per_step
            bar.update(task, completed=step, loss=1.0 / step, speed=32.0)
    return out.getvalue().splitlines()


def test_a_line_every_5_percent_of_the_steps_with_step_loss_rate_and_eta():
    lines = run(1000, 0.01)
    assert len(lines) == 20
    assert lines[0].startswith("training: step 50/1000 (5%), loss 0.0200, 32.0 samples/s, elapsed 0:00:00, ETA 0:00:")
    assert lines[-1].startswith("training: step 1000/1000 (100%)")


def test_slow_steps_get_a_line_every_30_seconds_before_the_next_5_percent():
    lines = run(1000, 10.0)[:6]
    assert [line.split(",")[0] for line in lines] == [f"training: step {s}/1000 (0%)" for s in (3, 6, 9)] + [
        f"training: step {s}/1000 (1%)" for s in (12, 15, 18)
    ]
    assert "ETA 2:46:10" in lines[0]  # 997 steps left at 10 s each


def test_a_resumed_run_counts_its_rate_from_where_it_resumed():
    lines = run(100, 1.0, completed=50)
    assert lines[0].startswith("training: step 55/100 (55%)") and "ETA 0:00:45" in lines[0]


def test_quiet_prints_nothing_and_a_terminal_keeps_the_rich_bar():
    out = io.StringIO()
    with training_progress(True, stream=out) as bar:
        task = bar.add_task("training", total=10, completed=0, loss=0.0, speed=0.0)
        bar.update(task, completed=10, loss=0.1, speed=1.0)
    assert out.getvalue() == ""
    assert isinstance(training_progress(False, stream=Terminal()), Progress)
