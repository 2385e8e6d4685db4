"""Hyper-parameter search with Optuna: TPE over the config's `tune:` ranges, median pruning per epoch.

The study lives in an RDB (SQLite under MODELYARD_HOME by default; any SQLAlchemy URL, e.g. PostgreSQL, lets
workers on several machines share one study). Each trial is an MLflow child run of the study's run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from accelerate.utils import set_seed
from sqlalchemy.exc import SQLAlchemyError

from modelyard.config import Config, ParamRange, dump_config
from modelyard.errors import ConfigError
from modelyard.fsutil import atomic_write_text
from modelyard.home import home
from modelyard.tasks import config_from_dict, get_task, load_config
from modelyard.training.callbacks import Callback, TrainerControl, TrainerState
from modelyard.training.loop import fit

log = logging.getLogger("modelyard.tuning")
EXAMPLE = (
    "tune:\n  params:\n    train.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}\n"
    "    train.batch_size: {choices: [16, 32]}"
)


@dataclass
class TuneResult:
    study: str
    storage: str
    best_value: float
    best_params: dict[str, Any]
    best_config: Path
    trials: int
    pruned: int


class PruningReporter(Callback):
    """Reports each evaluation to Optuna and asks the loop to stop when the median rule says so."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned = False

    def on_evaluate(self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]) -> None:
        if self.metric in metrics:
            self.trial.report(float(metrics[self.metric]), step=int(metrics.get("epoch", state.global_step)))
            if self.trial.should_prune():
                self.pruned = control.should_stop = True


def suggest(trial: optuna.Trial, key: str, spec: ParamRange) -> Any:
    if spec.choices is not None:
        return trial.suggest_categorical(key, spec.choices)
    assert spec.low is not None and spec.high is not None, "ParamRange checks a range is whole"
    integral = all(float(v).is_integer() for v in (spec.low, spec.high, spec.step or 1)) and not spec.log
    if integral and key.split(".")[-1] in ("epochs", "batch_size", "r", "layers", "hidden_size", "max_length"):
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=int(spec.step or 1))
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log, step=spec.step)


def check_params(config: Config) -> None:
    """Each searched key names a config key and each end of its range makes a valid config: a ConfigError now
    (`validate`, the start of `tune`), not when a trial samples it."""
    assert config.tune is not None
    for key, spec in config.tune.params.items():
        for value in spec.choices if spec.choices is not None else (spec.low, spec.high):
            try:
                with_params(config, {key: value})
            except ConfigError as err:
                raise ConfigError(f"tune.params.{key} = {value!r}: {err.message}") from None


def with_params(config: Config, params: dict[str, Any]) -> Config:
    raw = config.model_dump(mode="json")
    for key, value in params.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict | None) else None
            if node is None:
                raise ConfigError(f"tune.params: '{key}' does not name a config key")
        node[leaf] = value
    return config_from_dict(raw, "tune")


def _trial_tracker(config: Config, parent: list[str]):
    """Child MLflow runs per trial, under one parent run per study; tracking problems never stop the search."""
    try:
        from modelyard.tracking import runs, store

        client, uri = store.client(), store.tracking_uri()
        if not parent:
            parent.append(runs.start_run(client, uri, config.name, config.task, run_name=f"tune-{config.name}"))
        return client, uri, runs
    except Exception as err:  # an unreachable store must not stop tuning
        log.warning("tracking is off for this search (%s)", err)
        return None


def tune(
    config_path: str | Path,
    trials: int,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    output: Path | None = None,
    overrides: list[str] | None = None,
) -> TuneResult:
    config = load_config(config_path, overrides or [])
    if config.tune is None or not config.tune.params:
        raise ConfigError(f"{config_path}: no tune.params section to search over", f"add for example:\n{EXAMPLE}")
    task = get_task(config.task)
    metric = config.tune.metric or task.main_metric
    maximize = (config.tune.direction or ("maximize" if task.greater_is_better else "minimize")) == "maximize"
    check_params(config)
    storage = storage or f"sqlite:///{home() / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = optuna.study.StudyDirection.MAXIMIZE if maximize else optuna.study.StudyDirection.MINIMIZE
    try:
        study = optuna.create_study(
            study_name=study_name or config.name,
            storage=storage,
            load_if_exists=True,
            direction=direction,
            sampler=optuna.samplers.TPESampler(seed=config.train.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        )
    except (ImportError, ValueError, SQLAlchemyError) as err:
        raise ConfigError(f"--storage {storage}: cannot open the study ({err})", "e.g. sqlite:///study.db") from None
    if study.direction != direction:
        raise ConfigError(
            f"study '{study.study_name}' in {storage} is set to {study.direction.name.lower()} and this config asks "
            f"to {direction.name.lower()}",
            "name a new study with --study, or keep the study's direction",
        )
    data = task.prepare(config)
    parent: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        params = {key: suggest(trial, key, spec) for key, spec in config.tune.params.items()}
        trial_config = with_params(config, params)
        set_seed(trial_config.train.seed)
        learner = task.build(trial_config, data)
        reporter = PruningReporter(trial, metric)
        result = fit(
            learner,
            trial_config,
            data,
            callbacks=[reporter],
            quiet=True,
            main_metric=metric,
            greater_is_better=maximize,
        )
        value = result.validation.get(metric)
        tracker = _trial_tracker(config, parent)
        if tracker is not None:
            client, uri, runs = tracker
            with contextlib.suppress(Exception):
                run = runs.start_run(client, uri, config.name, config.task, f"trial-{trial.number}", parent[0])
                runs.log_params(client, uri, run, {"trial": params})
                for entry in result.history:
                    runs.log_metrics(client, uri, run, runs.history_metrics(entry), int(entry["step"]))
                client.set_terminated(run, "KILLED" if reporter.pruned else "FINISHED")
        if reporter.pruned:
            raise optuna.TrialPruned()
        if value is None:
            raise ConfigError(f"tune.metric '{metric}' is not among the validation metrics of {config.task}")
        return float(value)

    study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
    best = study.best_trial
    best_config = with_params(config, best.params).model_copy(update={"tune": None})
    output = output or Path(f"{config.name}-best.yaml")
    atomic_write_text(
        output,
        f"# best of study '{study.study_name}' (trial {best.number}, {metric} = "
        f"{best.value:.4f})\n" + dump_config(best_config),
    )
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuneResult(study.study_name, storage, float(best.value), best.params, output, len(study.trials), pruned)
