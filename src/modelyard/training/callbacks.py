"""Callbacks observe training and only set flags on `TrainerControl`; the loop is the only place that acts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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


class EarlyStopping(Callback):
    """Stop when the watched validation metric has not improved for `patience` evaluations."""

    def __init__(self, metric: str, greater_is_better: bool, patience: int, min_delta: float = 0.0) -> None:
        self.metric = metric
        self.sign = 1.0 if greater_is_better else -1.0
        self.patience = patience
        self.min_delta = min_delta
        self.bad = 0
        self.best = -math.inf

    def on_evaluate(self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]) -> None:
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
