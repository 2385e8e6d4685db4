"""The trainer callback that records a run in MLflow while `train` runs, and registers the bundle at the end.

Tracking never blocks work: the first store failure is reported once as a warning, later calls do nothing, and
the finished bundle can be logged afterwards with `modelyard models log BUNDLE`. Only the main process logs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import UserError
from modelyard.tracking import runs, store
from modelyard.training.callbacks import Callback, TrainerControl, TrainerState
from modelyard.training.distributed import is_main_process

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger("modelyard.tracking")
STEP_LOG_SECONDS = 5.0  # train loss goes to the store at most this often (each write is a transaction)


class TrackingCallback(Callback):
    """Logs params at the start, train loss and validation metrics as they come, and the bundle at `finish`.

    The training loop calls the `on_*` hooks; `pipeline.train` calls `finish(bundle)` once the bundle is written
    (the loop ends before the bundle exists) and `fail()` if training raises.
    """

    def __init__(self, warn: Any = None) -> None:
        self.warn = warn or (lambda message: log.warning(message))
        self.enabled = is_main_process()
        self.uri = store.tracking_uri()
        self.client: Any = None
        self.run_id: str | None = None
        self.metrics_run: str | None = None  # where per-epoch metrics go: nested runs for extra candidates
        self.children: list[str] = []
        self.version: ModelVersion | None = None
        self._last_step_log = 0.0

    def _guard(self, action: Any) -> Any:
        """Run one store action; on the first failure warn once and stop tracking for the rest of the run."""
        if not self.enabled:
            return None
        try:
            with store.store_errors(self.uri):
                return action()
        except Exception as err:
            self.enabled = False
            reason = str(err).splitlines()[0] if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            self.warn(
                f"tracking is off for this run ({reason}); training goes on. "
                "Log the finished bundle later with `modelyard models log BUNDLE`."
            )
            return None

    def _start(self, name: str, task: str, backbone: str | None) -> None:
        """The first candidate opens the run; later candidates (pipeline.train may try several) get nested runs."""

        def start() -> None:
            self.client = self.client or store.client(self.uri)
            if self.run_id is None:
                run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"  # MLflow's random name: one per seed, not run
                self.run_id = self.metrics_run = runs.start_run(self.client, self.uri, name, task, run_name)
            else:
                self.metrics_run = runs.start_run(self.client, self.uri, name, task, backbone, parent=self.run_id)
                self.children.append(self.metrics_run)

        self._guard(start)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if self.metrics_run is not None:
            self._guard(lambda: runs.log_metrics(self.client, self.uri, self.metrics_run, metrics, step))

    def on_train_begin(self, state: TrainerState, control: TrainerControl, config: Any) -> None:
        self.enabled = self.enabled and state.is_main_process
        self._start(config.name, config.task, getattr(config.model, "backbone", None))
        for index, entry in enumerate(state.history):  # a resumed run: replay what earlier sessions recorded
            self._log(runs.history_metrics(entry), int(entry.get("step", index + 1)))

    def on_step_end(self, state: TrainerState, control: TrainerControl, logs: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last_step_log >= STEP_LOG_SECONDS:
            self._last_step_log = now
            self._log(runs.scalar_metrics(logs, "train"), state.global_step)

    def on_evaluate(self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]) -> None:
        plain = ("epoch", "train_loss")
        flat = runs.scalar_metrics({k: v for k, v in metrics.items() if k not in plain}, "validation")
        flat.update(runs.scalar_metrics({k: metrics[k] for k in plain if k in metrics}, ""))
        self._log(flat, state.global_step)

    def log_entry(self, entry: dict[str, Any]) -> None:
        """One history.jsonl line at its step, for work without a training loop (a federation's rounds)."""
        self._log(runs.history_metrics(entry), int(entry.get("step", 0)))

    def finish(self, bundle: str | Path, report: dict[str, Any] | None = None) -> ModelVersion | None:
        """Log test metrics, provenance and the bundle, register a new version; None if tracking is off."""
        if not self.enabled:
            return None
        try:
            content = runs.read_bundle(Path(bundle))
        except UserError as err:
            self.warn(f"tracking skipped: {err}")
            return None
        if self.run_id is None:  # learners trained without the gradient loop never called on_train_begin
            config = content["config"]
            self._start(config["name"], str(config.get("task")), None)
            for index, entry in enumerate(content["history"]):
                self._log(runs.history_metrics(entry), int(entry.get("step", index + 1)))
        if self.run_id is None:
            return None
        self.version = self._guard(lambda: runs.finish_run(self.client, self.uri, self.run_id, content, report))
        self._end("FINISHED" if self.version is not None else "FAILED")
        return self.version

    def fail(self) -> None:
        """Mark the run failed when training raised; never raises itself."""
        self._end("FAILED")

    def _end(self, status: str) -> None:
        """Close the run if it was opened; a store that fails here has already been reported."""
        if self.run_id is None or self.client is None:
            return
        run_ids, self.run_id, self.metrics_run = [*self.children, self.run_id], None, None
        with contextlib.suppress(Exception), store.store_errors(self.uri):
            for run_id in run_ids:
                self.client.set_terminated(run_id, status)
