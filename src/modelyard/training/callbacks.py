"""Callbacks observe training and only set flags on `TrainerControl`; the loop is the only place that acts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import ConfigError


@dataclass
class TrainerControl:
    should_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False


@dataclass
class TrainerState:
    epoch: int = 0
    global_step: int = 0
    max_steps: int = 0
    steps_per_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    is_main_process: bool = True


class Callback:
    """Override what you need; every hook receives the state and may set flags on control."""

    def on_train_begin(self, state: TrainerState, control: TrainerControl, config: Any) -> None: ...

    def on_step_end(self, state: TrainerState, control: TrainerControl, logs: dict[str, float]) -> None: ...

    def on_evaluate(self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]) -> None: ...

    def on_train_end(self, state: TrainerState, control: TrainerControl) -> None: ...


def check_metric(metric: str | None, names: Iterable[str]) -> None:
    """A metric named in `train.early_stopping.metric` must be one that validation reports: any other is never
    seen, which would turn early stopping and the choice of the best weights off without a word."""
    names = list(names)
    if metric is not None and metric not in names:
        raise ConfigError(
            f"train.early_stopping.metric: validation reports no metric '{metric}'",
            f"choose one of {', '.join(names)}",
        )


def check_early_stopping(task: Any, config: Any) -> None:
    """`train.early_stopping.metric` checked before anything trains (`validate`, `train`, each `tune` trial), against
    the metrics the task's validation reports (its `validation_metrics`), for every task that declares them; a task
    that always watches one metric (its `stopping_metric`) refuses any other instead of ignoring it."""
    named = config.train.early_stopping.metric if config.train.early_stopping else None
    fixed = getattr(task, "stopping_metric", None)
    if fixed is not None and named not in (None, fixed):  # the task would watch its own metric and ignore this one
        raise ConfigError(
            f"train.early_stopping.metric: {task.name} models stop training by their own validation metric ({fixed}), "
            f"so '{named}' would be ignored",
            f"leave train.early_stopping.metric unset (train.early_stopping.patience is used), or set it to {fixed}",
        )
    known = getattr(task, "validation_metrics", None)
    if known is not None:
        check_metric(named, known)


class EarlyStopping(Callback):
    """Stop when the watched validation metric has not improved for `patience` evaluations; `named`: the user
    chose the metric, so the first evaluation that lacks it is a config error."""

    def __init__(
        self, metric: str, greater_is_better: bool, patience: int, min_delta: float = 0.0, named: bool = False
    ) -> None:
        self.metric = metric
        self.named = named
        self.sign = 1.0 if greater_is_better else -1.0
        self.patience = patience
        self.min_delta = min_delta
        self.bad = 0
        self.best = -math.inf

    def on_evaluate(self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]) -> None:
        scores = {k: v for k, v in metrics.items() if k not in ("epoch", "train_loss")}
        if self.named and scores:  # no scores: no validation split, nothing to watch
            check_metric(self.metric, [k for k, v in scores.items() if isinstance(v, int | float)])
        value = metrics.get(self.metric)
        if value is None:
            return
        if self.sign * value > self.best + self.min_delta:
            self.best = self.sign * value
            self.bad = 0
        else:
            self.bad += 1
            control.should_stop = control.should_stop or self.bad >= self.patience  # another callback may stop too

    def state_dict(self) -> dict[str, float]:
        return {"bad": self.bad, "best": self.best}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.bad, self.best = int(state["bad"]), float(state["best"])
