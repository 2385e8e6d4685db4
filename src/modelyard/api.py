"""The Python API: `train`, `load`, `validate`, and the `Model` they return (`predict`, `evaluate`).

Few verbs, the same for every task, no hidden global state (scikit-learn's estimator API is the model).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelyard import bundle
from modelyard.config import Config, config_from_dict, dump_config, load_config
from modelyard.errors import BundleError
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.home import home, offline
from modelyard.tasks import get_task
from modelyard.tasks.base import Learner, PreparedData

if TYPE_CHECKING:  # training's libraries (accelerate, pandas, scipy) load with `train`: `load` needs none of them
    from modelyard.training.callbacks import Callback
    from modelyard.training.loop import TrainResult

offline()


@dataclass
class Model:
    """A loaded bundle: predict with it, evaluate it, serve it."""

    path: Path
    manifest: dict[str, Any]
    config: Config
    learner: Learner
    version: str | None = None  # the registry version, when loaded through models:/NAME@ALIAS

    @property
    def task(self):
        return get_task(self.config.task)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def labels(self) -> list[str] | None:
        return self.manifest.get("labels")

    def predict(self, inputs: Sequence[Any], top_k: int = 1) -> list[dict[str, Any]]:
        return self.learner.predict(list(inputs), top_k=top_k)

    def evaluate(self, data: str | Path | None = None) -> dict[str, Any]:
        """Metrics on a labelled file, or by default on the bundle's own test split (re-read, fingerprint-checked)."""
        if data is None:
            prepared = self.task.prepare(self.config)
            expected = self.manifest.get("data", {}).get("test", {}).get("sha256")
            actual = prepared.fingerprints.get("test", {}).get("sha256")
            result = self.learner.evaluate(prepared.splits["test"])
            if expected and actual != expected:
                result["warning"] = "the test split differs from the one the bundle was evaluated on at train time"
            return result
        raw = self.config.model_dump(mode="json")
        raw["data"].update(train=str(Path(data).resolve()), validation=None, test=None, max_rows=None)
        raw["data"]["split"].update(validation=0.0, test=0.0)
        prepared = self.task.prepare(config_from_dict(raw, str(data)))
        return self.learner.evaluate(prepared.splits["train"])


def default_output(name: str) -> Path:
    return home() / "bundles" / name / datetime.now().strftime("%Y%m%d-%H%M%S")


def latest_unfinished(name: str) -> Path | None:
    """For `--resume` without `--output`: the newest run of this name that has checkpoints and no manifest."""
    root = home() / "bundles" / name
    runs = sorted(p for p in root.glob("*") if (p / "checkpoints").is_dir() and not (p / bundle.MANIFEST).exists())
    return runs[-1] if runs else None


def validate(config: Config | str | Path, overrides: Sequence[str] = ()) -> PreparedData:
    """Read, clean and split the data exactly as `train` would, and report; trains nothing."""
    config = config if isinstance(config, Config) else load_config(config, list(overrides))
    return get_task(config.task).prepare(config)


def validate_stream(config: Config | str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Check data files too large to hold in one streaming pass each (rows, skips, empty values, labels,
    duplicates, lengths, sha256), in bounded memory; splits and tokenizer coverage need `validate`."""
    from modelyard.data.streaming import scan

    config = config if isinstance(config, Config) else load_config(config, list(overrides))
    return scan(config.data)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _train_candidate(
    config: Config,
    data: PreparedData,
    backbone: str,
    checkpoints: Path | None,
    resume: bool,
    quiet: bool,
    callbacks: list[Callback],
) -> tuple[Config, Learner, TrainResult]:
    from accelerate.utils import set_seed

    from modelyard.training.loop import fit

    task = get_task(config.task)
    config = config.model_copy(update={"model": config.model.model_copy(update={"backbone": backbone})})
    set_seed(config.train.seed)  # before build: weight initialisation is part of a reproducible run
    learner = task.build(config, data)
    result = fit(
        learner,
        config,
        data,
        callbacks=callbacks,
        checkpoint_dir=checkpoints,
        resume=resume,
        quiet=quiet,
        main_metric=task.main_metric,
        greater_is_better=task.greater_is_better,
    )
    return config.model_copy(update={"train": result.train}), learner, result


def train(
    config: Config | str | Path,
    output: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    quiet: bool = False,
    keep_checkpoints: bool = False,
    callbacks: Sequence[Callback] = (),
    on_report=None,
    track: bool = True,
    on_warning=None,
) -> Model:
    """Prepare data, train (several candidates when the task proposes them), evaluate on test, write the bundle."""
    from modelyard.training.distributed import is_main_process, wait_for_everyone

    config = config if isinstance(config, Config) else load_config(config, list(overrides))
    task = get_task(config.task)
    if output is None:
        output = (latest_unfinished(config.name) if resume else None) or default_output(config.name)
    output = Path(output).resolve()
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    data = task.prepare(config)
    candidates = task.candidates(config, data) if hasattr(task, "candidates") else [(config.model.backbone, "")]
    data.report["backbone_choice"] = [{"backbone": b, "reason": why} for b, why in candidates]
    if on_report is not None:
        on_report(data)
    tracker = _tracker(on_warning) if track else None
    callbacks = [*callbacks, *([tracker] if tracker else [])]
    trained = []
    try:
        for backbone, _ in candidates:
            sub = "checkpoints" if len(candidates) == 1 else f"checkpoints/{backbone}"
            trained.append(_train_candidate(config, data, backbone, output / sub, resume, quiet, callbacks))
        if is_main_process():
            _write_results(output, task, data, trained, cpu0, wall0, keep_checkpoints)
    except BaseException:
        if tracker is not None:
            tracker.fail()
        raise
    wait_for_everyone()
    model = load(output)
    if tracker is not None and (version := tracker.finish(output, {**data.report, "warnings": data.warnings})):
        model.version = str(version.version)
    return model


def _tracker(on_warning=None):
    """The MLflow callback (rank 0 logs); tracking problems only warn, they never stop training."""
    from modelyard.tracking.callback import TrackingCallback
    from modelyard.tracking.store import tracking_wanted

    return TrackingCallback(warn=on_warning) if tracking_wanted() else None


def _write_results(
    output: Path,
    task,
    data: PreparedData,
    trained: list[tuple[Config, Learner, TrainResult]],
    cpu0: float,
    wall0: float,
    keep_checkpoints: bool,
) -> None:
    """Keep the best candidate, score it on test beside the baselines, write the bundle (rank 0 only)."""
    from modelyard.evaluation.intervals import intervals_for
    from modelyard.evaluation.model_card import write_model_card
    from modelyard.monitoring import reference

    sign = 1 if task.greater_is_better else -1
    tried = [{"backbone": c.model.backbone, "validation": r.validation.get(task.main_metric)} for c, _, r in trained]
    resolved, learner, result = max(trained, key=lambda t: sign * t[2].validation.get(task.main_metric, -sign * 1e18))
    test = learner.evaluate(data.splits["test"]) if len(data.splits["test"]) else {}
    metrics = {
        "validation": result.validation,
        "test": test,
        "baselines": task.baselines(resolved, data),
        "train": {
            "seconds": round(result.seconds, 2),
            "samples_per_second": round(result.samples_per_second, 2),
            "steps": result.steps,
            "precision": result.precision,
            "processes": result.processes,
            "cpu_seconds": round(_cpu_seconds() - cpu0, 2),
            "wall_seconds": round(time.perf_counter() - wall0, 2),
        },
    }
    if len(tried) > 1:
        metrics["candidates"] = tried
    found = intervals_for(learner, data.splits["test"])
    if found is not None:  # classifiers' intervals are rebuilt from the confusion matrix instead
        metrics["test_intervals"] = {"method": found[1], **found[0]}

    def write(staging: Path) -> dict[str, Any]:
        extras = learner.save(staging)
        reference.write(staging, learner, data.splits)  # the drift baseline `modelyard monitor` compares with
        atomic_write_text(staging / "config.yaml", dump_config(resolved))
        atomic_write_json(staging / "metrics.json", metrics)
        bundle.write_jsonl(staging / "history.jsonl", result.history)
        atomic_write_json(staging / "data_report.json", {**data.report, "warnings": data.warnings})
        write_model_card(staging, {**manifest, **extras})  # before sealing, so the manifest checksums it
        return extras

    manifest = {"task": resolved.task, "name": resolved.name, "backbone": learner.backbone, "data": data.fingerprints}
    bundle.write_bundle(output, write, manifest, keep_checkpoints=keep_checkpoints)


def load(ref: str | Path) -> Model:
    """Load a bundle folder (checksums verified) or a registry URI `models:/NAME@ALIAS` / `models:/NAME/VERSION`."""
    version = None
    if str(ref).startswith("models:/"):
        from modelyard.tracking.registry import resolve_model_uri

        path, version = resolve_model_uri(str(ref))
    else:
        path = Path(ref)
    manifest = bundle.verify(path)
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise BundleError(f"{path}: config.yaml is unreadable ({err})") from None
    config = config_from_dict(raw, str(path / "config.yaml"))
    learner = get_task(config.task).load(path, manifest, config)
    return Model(path.resolve(), manifest, config, learner, version)


def serve(model: str | Path, **settings: Any) -> None:
    """Serve a bundle or `models:/NAME@ALIAS` over HTTP until SIGTERM (settings: host, port, max_batch_size, ...)."""
    from modelyard.serving.run import run_server
    from modelyard.serving.settings import ServeSettings

    run_server(str(model), ServeSettings(**settings))
