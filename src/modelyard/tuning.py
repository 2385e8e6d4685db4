"""Hyper-parameter search with Optuna: TPE over the config's `tune:` ranges, median pruning per epoch.

The study lives in an RDB (SQLite under MODELYARD_HOME by default; any SQLAlchemy URL, e.g. PostgreSQL, lets
workers on several machines share one study). Each trial is an MLflow child run of the study's run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import optuna
from accelerate.utils import set_seed
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from modelyard.config import Config, ParamRange, dump_config
from modelyard.errors import ConfigError, DataError, UserError
from modelyard.fsutil import atomic_write_text
from modelyard.home import home
from modelyard.pipeline import backbone_candidates, prepared_for_training
from modelyard.protocols import PreparedData
from modelyard.state import masked, without_password
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

    def __init__(self, trial: optuna.Trial, metric: str, prune: bool = True) -> None:
        self.trial = trial
        self.metric = metric
        self.prune = prune  # off when a trial trains several candidates: their epochs would report one step twice
        self.pruned = False

    def on_evaluate(self, state: TrainerState, control: TrainerControl, metrics: dict[str, Any]) -> None:
        if self.metric not in metrics:  # at the first evaluation, not after a whole trial
            names = [k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
            raise ConfigError(f"tune.metric: validation reports no metric '{self.metric}'", f"choose one of {names}")
        if not self.prune:
            return
        self.trial.report(float(metrics[self.metric]), step=int(metrics.get("epoch", state.global_step)))
        if self.trial.should_prune():
            self.pruned = control.should_stop = True


def suggest(trial: optuna.Trial, key: str, spec: ParamRange, config: Config) -> Any:
    if spec.choices is not None:
        return trial.suggest_categorical(key, spec.choices)
    assert spec.low is not None and spec.high is not None, "ParamRange checks a range is whole"
    if is_integer_key(config, key, spec):
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log, step=spec.step)


def is_integer_key(config: Config, key: str, spec: ParamRange) -> bool:
    """Integers for a key the schema types as int; in a free-form mapping (model.gbdt) the range decides: whole
    low, high and step sample integers, since the library behind it (LightGBM) refuses 4.7 leaves."""
    annotation = _annotation(config, key)
    if annotation is None:
        return all(float(v).is_integer() for v in (spec.low, spec.high, spec.step or 1))
    args = [a for a in (get_args(annotation) if _is_union(annotation) else (annotation,)) if a is not type(None)]
    return bool(args) and all((get_args(a)[0] if get_origin(a) is Annotated else a) is int for a in args)


def _annotation(config: Config, key: str) -> Any:
    """The schema's type of the config field `key`, or None when `key` lies inside a free-form mapping."""
    node: Any = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = _section(node, part)
        if node is None:
            return None
    field = _model_class(node).model_fields.get(leaf)
    return field.annotation if field is not None else None


def _section(node: Any, part: str) -> Any:
    """The sub-model `part` of a model instance (the task's own section) or class (an unset optional section)."""
    field = _model_class(node).model_fields.get(part)
    if field is None:
        return None
    value = None if isinstance(node, type) else getattr(node, part, None)
    if isinstance(value, BaseModel):
        return value
    options = get_args(field.annotation) if _is_union(field.annotation) else (field.annotation,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None)


def _model_class(node: Any) -> type[BaseModel]:
    return node if isinstance(node, type) else type(node)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType)


def check_params(config: Config) -> None:
    """Each searched key names a config key and each end of its range (and its first step) makes a valid config,
    and tune.metric is one the task's validation reports: a ConfigError now (`validate`, the start of `tune`), not
    when a trial samples it."""
    assert config.tune is not None
    known = getattr(get_task(config.task), "validation_metrics", None)
    if config.tune.metric is not None and known is not None and config.tune.metric not in known:
        raise ConfigError(
            f"tune.metric: validation of {config.task} reports no metric '{config.tune.metric}'",
            f"choose one of {', '.join(known)}",
        )
    for key, spec in config.tune.params.items():
        if key.split(".")[0] == "data":  # trials are scored on one validation split, so the data stays fixed
            raise ConfigError(
                f"tune.params.{key}: data keys cannot be searched (every trial is scored on the same data)",
                f"set {key} in the config and tune once per value",
            )
        for value in _values_to_check(spec):
            try:
                with_params(config, {key: value})
            except ConfigError as err:
                raise ConfigError(f"tune.params.{key} = {value!r}: {err.message}") from None


def _values_to_check(spec: ParamRange) -> list[Any]:
    """The choices, or both ends and the first step (a fractional step of an integer key shows there)."""
    if spec.choices is not None:
        return list(spec.choices)
    steps = [spec.low + spec.step] if spec.step is not None and spec.low + spec.step <= spec.high else []
    return [spec.low, spec.high, *steps]


def check_prepared(config: Config, task: Any) -> None:
    """What the task refuses only once it reads the data (a backbone that cannot use model.domain_pretraining, a
    tokenizer that does not cover the texts), for each searched value alone: a ConfigError before any trial."""
    assert config.tune is not None
    prepared: PreparedData | None = None
    for key, spec in config.tune.params.items():
        for value in _values_to_check(spec):
            try:
                data = task.prepare(with_params(config, {key: value}))
                _check_validation(data)
            except (ConfigError, DataError) as err:
                raise ConfigError(f"tune.params.{key} = {value!r}: {err.message}", err.hint) from None
            prepared = data if prepared is None else prepared
    reported = getattr(task, "validation_metrics_for", None)  # tasks whose metrics depend on the data (tables)
    if config.tune.metric is not None and reported is not None and prepared is not None:
        known = reported(config, prepared)
        if config.tune.metric not in known:
            raise ConfigError(
                f"tune.metric: validation of this {config.task} data reports no metric '{config.tune.metric}'",
                f"choose one of {', '.join(known)}",
            )


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


def _keep_study_settings(study: optuna.Study, storage: str, metric: str, keys: list[str]) -> None:
    """A study ranks trials of one metric over one set of searched keys: a reused name with another is refused,
    or its trials would be ranked against values of another metric or search."""
    wanted = {"metric": metric, "params": keys}
    for name, value in wanted.items():
        kept = study.user_attrs.get(name)
        if kept is None:  # a new study, or one from before these were kept
            study.set_user_attr(name, value)
        elif kept != value:
            raise ConfigError(
                f"study '{study.study_name}' in {storage} {_said(name, kept)} and this config {_said(name, value)}",
                "name a new study with --study",
            )


def _said(name: str, value: Any) -> str:
    return f"ranks by {value}" if name == "metric" else f"searches {', '.join(value)}"


def _prepare(task: Any, config: Config) -> PreparedData:
    """The data as `train` prepares it for this config, with a validation split to score the trial on."""
    data = prepared_for_training(task, config)
    _check_validation(data)
    return data


def _check_validation(data: PreparedData) -> None:
    if not len(data.splits["validation"]):
        raise ConfigError("tune: the validation split is empty, so no trial can be scored", "set data.split.validation")


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


def _end_study_run(parent: list[str], study: optuna.Study, metric: str, status: str) -> None:
    """Close the study's MLflow run with the best trial so far (its value and params); never raises."""
    if not parent:
        return
    try:
        from modelyard.tracking import runs, store

        client, uri = store.client(), store.tracking_uri()
        with store.store_errors(uri):
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            if done:
                best = study.best_trial
                chosen = {"model.backbone": best.user_attrs["backbone"]} if "backbone" in best.user_attrs else {}
                runs.log_params(client, uri, parent[0], {"best": {**best.params, **chosen, "trial": best.number}})
                runs.log_metrics(client, uri, parent[0], runs.scalar_metrics({metric: best.value}, "best"), best.number)
            client.set_terminated(parent[0], "FAILED" if status == "FINISHED" and not done else status)
    except Exception as err:  # an unreachable store must not hide the search's own outcome
        log.warning("the study's MLflow run %s was left open (%s)", parent[0], err)


def _run_trial(
    task: Any,
    trial: optuna.Trial,
    config: Config,
    data: PreparedData,
    metric: str,
    maximize: bool,
    params: dict[str, Any],
    parent: list[str],
) -> tuple[float, str, bool]:
    """Train each backbone `train` would try for this trial's config (`auto` resolved as train resolves it);
    returns the best value of `metric`, its backbone, and whether the median rule pruned the trial."""
    candidates = backbone_candidates(task, config, data)
    reporter = PruningReporter(trial, metric, prune=len(candidates) == 1)
    best: tuple[float, str] | None = None
    history: list[dict[str, Any]] = []
    for backbone, _ in candidates:
        candidate = config.model_copy(update={"model": config.model.model_copy(update={"backbone": backbone})})
        set_seed(candidate.train.seed)  # before build: weight initialisation is part of a reproducible run
        result = fit(
            task.build(candidate, data),
            candidate,
            data,
            callbacks=[reporter],
            quiet=True,
            main_metric=metric,
            greater_is_better=maximize,
        )
        history += result.history
        value = result.validation.get(metric)
        if value is None:
            raise ConfigError(f"tune.metric '{metric}' is not among the validation metrics of {config.task}")
        if best is None or (float(value) > best[0]) == maximize:
            best = (float(value), backbone)
        if reporter.pruned:
            break
    assert best is not None, "a task proposes at least one backbone"
    _track_trial(config, trial, {**params, "model.backbone": best[1]}, history, reporter.pruned, parent)
    return best[0], best[1], reporter.pruned


def _track_trial(
    config: Config, trial: optuna.Trial, params: dict[str, Any], history: list, pruned: bool, parent: list[str]
) -> None:
    """The trial as an MLflow child run of the study's run."""
    tracker = _trial_tracker(config, parent)
    if tracker is not None:
        client, uri, runs = tracker
        with contextlib.suppress(Exception):
            run = runs.start_run(client, uri, config.name, config.task, f"trial-{trial.number}", parent[0])
            runs.log_params(client, uri, run, {"trial": params})
            for entry in history:
                runs.log_metrics(client, uri, run, runs.history_metrics(entry), int(entry["step"]))
            client.set_terminated(run, "KILLED" if pruned else "FINISHED")


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
        reason = without_password(str(err), storage)
        shown = masked(storage)
        raise ConfigError(f"--storage {shown}: cannot open the study ({reason})", "e.g. sqlite:///study.db") from None
    if study.direction != direction:
        raise ConfigError(
            f"study '{study.study_name}' in {masked(storage)} is set to {study.direction.name.lower()} and this "
            f"config asks to {direction.name.lower()}",
            "name a new study with --study, or keep the study's direction",
        )
    _keep_study_settings(study, masked(storage), metric, sorted(config.tune.params))
    check_prepared(config, task)
    parent: list[str] = []
    refused: list[str] = []  # combinations the task refuses: failed trials, the search goes on
    stopped: list[UserError] = []  # a setting no trial can satisfy: the search stops and says so

    def objective(trial: optuna.Trial) -> float:
        params = {key: suggest(trial, key, spec, config) for key, spec in config.tune.params.items()}
        try:  # a combination the task refuses fails its trial, so the best config is never one train refuses
            trial_config = with_params(config, params)
            data = _prepare(task, trial_config)
        except (ConfigError, DataError) as err:
            refused.append(f"trial {trial.number} {params}: {err.message}")
            log.warning("%s", refused[-1])
            trial.set_user_attr("refused", err.message)
            return float("nan")  # Optuna records a failed trial
        try:
            value, backbone, pruned = _run_trial(task, trial, trial_config, data, metric, maximize, params, parent)
        except UserError as err:
            stopped.append(err)
            study.stop()
            return float("nan")
        except Exception as err:  # the library behind the model refused these values: this trial fails, not tune
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            refused.append(f"trial {trial.number} {params}: training failed ({reason})")
            log.warning("%s", refused[-1])
            log.debug("trial %d failed", trial.number, exc_info=True)
            trial.set_user_attr("failed", reason)
            return float("nan")
        if pruned:
            raise optuna.TrialPruned()
        trial.set_user_attr("backbone", backbone)
        return value

    try:
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=())
    except KeyboardInterrupt:
        _end_study_run(parent, study, metric, "KILLED")
        raise
    except BaseException:
        _end_study_run(parent, study, metric, "FAILED")
        raise
    _end_study_run(parent, study, metric, "FAILED" if stopped else "FINISHED")
    if stopped:
        raise stopped[0]
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ConfigError(
            f"study '{study.study_name}': no trial completed" + (f" ({refused[0]})" if refused else ""),
            "change tune.params" if refused else "give --timeout time for at least one trial",
        )
    best = study.best_trial
    chosen = {"model.backbone": best.user_attrs["backbone"]} if "backbone" in best.user_attrs else {}
    best_config = with_params(config, {**best.params, **chosen}).model_copy(update={"tune": None})
    output = output or Path(f"{config.name}-best.yaml")
    atomic_write_text(
        output,
        f"# best of study '{study.study_name}' (trial {best.number}, {metric} = "
        f"{best.value:.4f})\n" + dump_config(best_config),
    )
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuneResult(study.study_name, storage, float(best.value), best.params, output, len(study.trials), pruned)
