"""Training orchestration, shared by `train`, `retrain`, `tune` and `distill`: prepare the data, train every
candidate backbone the task proposes, keep the best on validation, score it on test beside the baselines, write the
bundle, log the run.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard import bundle
from modelyard.config import Config, dump_config
from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.home import home
from modelyard.loader import Model, load
from modelyard.protocols import Learner, PreparedData
from modelyard.tasks import as_config, check_evaluation, get_task

log = logging.getLogger("modelyard.training")

if TYPE_CHECKING:  # training's libraries (accelerate, pandas, scipy) load with `train`: `load` needs none of them
    from modelyard.training.callbacks import Callback
    from modelyard.training.loop import TrainResult


def default_output(name: str) -> Path:
    """A new folder for one run, `bundles/NAME/YYYYmmdd-HHMMSS`, created here so that no other run can claim it:
    runs started in the same second get `-2`, `-3`... (two runs sharing a folder would overwrite each other)."""
    root = home() / "bundles" / name
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        path = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def _run_order(path: Path) -> tuple[str, int]:
    """Sorts `default_output` folders by time, then by their same-second suffix (`-10` after `-9`)."""
    day, _, rest = path.name.partition("-")
    clock, _, suffix = rest.partition("-")
    return day + clock, int(suffix) if suffix.isdigit() else 1


def latest_unfinished(name: str) -> Path | None:
    """For `--resume` without `--output`: the newest run of this name that has checkpoints and no manifest."""
    root = home() / "bundles" / name
    found = (p for p in root.glob("*") if (p / "checkpoints").is_dir() and not (p / bundle.MANIFEST).exists())
    runs = sorted(found, key=_run_order)
    return runs[-1] if runs else None


def _warn_registered_output(output: Path, name: str, warn: Callable[[str], Any]) -> None:
    """Training into the folder of a registered version replaces that folder, not the version: say so, and where
    `models:/NAME/N` is served from now (the copy logged with it: a registered version is immutable)."""
    if not (output / bundle.MANIFEST).is_file():
        return
    from modelyard.tracking.registry import versions_held
    from modelyard.tracking.store import tracking_wanted

    held = versions_held(name, output) if tracking_wanted() else []
    if held:
        warn(
            f"--output {output} holds the bundle registered as model '{name}' version {', '.join(held)}; this run "
            "replaces the folder, while that version stays as registered (served from its copy in the tracking store)"
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepared_for_training(task: Any, config: Config) -> PreparedData:
    """The data as training reads it (`train`, each `tune` trial): prepared, checked for what DP-SGD cannot
    account for, and with `data.label_noise` applied (rows that look mislabelled dropped, down-weighted or listed)."""
    from modelyard.learners.label_noise import apply_label_noise
    from modelyard.privacy.scan import warn_literal_salt
    from modelyard.training import privacy
    from modelyard.training.callbacks import check_early_stopping

    check_early_stopping(task, config)
    check_evaluation(task, config)
    data = task.prepare(config)
    privacy.check(config, task, len(data.splits["train"]))
    warn_literal_salt(config, data)
    if config.data.label_noise is not None:
        apply_label_noise(task, config, data)
    return data


def backbone_candidates(task: Any, config: Config, data: PreparedData) -> list[tuple[str, str]]:
    """(backbone, why) for each backbone training tries: the task's candidates (`auto` resolved), or its one
    backbone and what chose it."""
    if hasattr(task, "candidates"):
        return task.candidates(config, data)
    named = "backbone" in config.model.model_fields_set
    return [(config.model.backbone, "named in the config" if named else "the task's default")]


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
    _free_training_leftovers()
    return config.model_copy(update={"train": result.train}), learner, result


def _free_training_leftovers() -> None:
    """The finished loop's optimizer state, Accelerate's wrappers and batches sit in reference cycles until a
    collection: free them and hand the blocks back before test scoring and the next candidate, so those do not
    stack on a training-sized heap (multilingual-e5-small: Adam state alone is 176 MB)."""
    import gc

    from modelyard.training.memory import release_free_memory

    gc.collect()
    release_free_memory()


def train(
    config: Config | dict[str, Any] | str | Path,
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

    config = as_config(config, overrides)
    task = get_task(config.task)
    if output is None and resume:
        output = latest_unfinished(config.name)
    if output is not None:
        output = Path(output).resolve()
        bundle.refuse_foreign_output(output)
        if track:
            _warn_registered_output(output, config.name, on_warning or log.warning)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    with contextlib.ExitStack() as held:
        if output is not None:  # refused before the data is read when another run holds it
            held.enter_context(output_lock(output))
        data = prepared_for_training(task, config)
        if output is None:  # claimed once the data passed: a refused run leaves no folder
            output = default_output(config.name)
            held.enter_context(output_lock(output))  # `train --resume` without --output would pick it up
        candidates = backbone_candidates(task, config, data)
        data.report["backbone_choice"] = [{"backbone": b, "reason": why} for b, why in candidates]
        if on_report is not None:
            on_report(data)
        if resume and is_main_process():
            _warn_fresh_start(output, [b for b, _ in candidates], on_warning or log.warning)
        tracker = _tracker(on_warning) if track else None
        callbacks = [*callbacks, *([tracker] if tracker else [])]
        trained = []
        try:
            for backbone, _ in candidates:
                folder = _checkpoints(output, backbone, len(candidates))
                trained.append(_train_candidate(config, data, backbone, folder, resume, quiet, callbacks))
            test = _score_test(task, data, trained)  # on every rank, each scoring its share
            if is_main_process():
                write_results(output, task, data, trained, cpu0, wall0, keep_checkpoints, test, training_extras(data))
        except BaseException:
            if tracker is not None:
                tracker.fail()
            raise
        wait_for_everyone()
        _release(trained)
        model = load(output)
        if tracker is not None and (version := tracker.finish(output, {**data.report, "warnings": data.warnings})):
            model.version = str(version.version)
        return model


def output_lock(output: Path) -> contextlib.AbstractContextManager:
    """The lock a training run holds on its --output until it ends (or dies): a second run there is refused instead
    of training beside it. `.NAME.lock/` beside the output, as the whole output folder is replaced at the end."""
    from modelyard.batch.journal import OutputLock
    from modelyard.training.distributed import holds_output_lock

    if not holds_output_lock():
        return contextlib.nullcontext()
    return OutputLock(output, output.with_name(f".{output.name}.lock"))


def _checkpoints(output: Path, backbone: str, candidates: int) -> Path:
    """Where a candidate's checkpoints go: `checkpoints/`, or `checkpoints/BACKBONE` when there are several."""
    return output / "checkpoints" if candidates == 1 else output / "checkpoints" / backbone


def _warn_fresh_start(output: Path, backbones: list[str], warn: Callable[[str], Any]) -> None:
    """`--resume` with nothing to resume (the run was killed before its first checkpoint) starts from step 0:
    say so, rather than let a run that looks continued quietly take its full time."""
    from modelyard.training.checkpoint import has_checkpoint

    for backbone in backbones:
        folder = _checkpoints(output, backbone, len(backbones))
        if not has_checkpoint(folder):
            warn(f"--resume: {folder} holds no complete checkpoint; training {backbone} from the beginning")


def _release(trained: list) -> None:
    """Free the trained candidates before the bundle is loaded back, so the two copies never coexist (a 118M
    encoder's weights, optimizer leftovers and caches: 3.4 GB peak at that moment on long Chinese reviews)."""
    trained.clear()
    _free_training_leftovers()  # the loop's closures and Accelerate hold the module in reference cycles


def _tracker(on_warning=None):
    """The MLflow callback (rank 0 logs); tracking problems only warn, they never stop training."""
    from modelyard.tracking.callback import TrackingCallback
    from modelyard.tracking.store import tracking_wanted

    return TrackingCallback(warn=on_warning) if tracking_wanted() else None


def _best(task, trained: list[tuple[Config, Learner, TrainResult]]) -> tuple[Config, Learner, TrainResult]:
    """The candidate with the best validation score."""
    sign = 1 if task.greater_is_better else -1
    return max(trained, key=lambda t: sign * t[2].validation.get(task.main_metric, -sign * 1e18))


def _score_test(task, data: PreparedData, trained: list[tuple[Config, Learner, TrainResult]]) -> dict[str, Any]:
    """The best candidate's test metrics; under `--nproc` every rank evaluates its share of the test split."""
    from modelyard.training.loop import evaluate_split

    return evaluate_split(_best(task, trained)[1], data.splits["test"])


def training_extras(data: PreparedData) -> dict[str, Any]:
    """What metrics.json adds about how the training data was treated (`train`, `distill`): the label-noise
    audit's counts and lines, and masked-LM pretraining's loss and cost."""
    from modelyard.learners.label_noise import label_noise_metrics

    extra = {"label_noise": label_noise_metrics(data.report)} if "label_noise" in data.report else {}
    if "domain_pretraining" in data.report:
        extra["domain_pretraining"] = data.report["domain_pretraining"]
    return extra


def write_results(
    output: Path,
    task,
    data: PreparedData,
    trained: list[tuple[Config, Learner, TrainResult]],
    cpu0: float,
    wall0: float,
    keep_checkpoints: bool,
    test: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Keep the best candidate, score it on test (unless `test` has its metrics) beside the baselines, write the
    bundle (rank 0 only). `extra` adds top-level keys to metrics.json (a federation's summary, `epsilon`)."""
    from modelyard.drift import reference
    from modelyard.evaluation.model_card import write_model_card
    from modelyard.metrics.intervals import intervals_for

    tried = [{"backbone": c.model.backbone, "validation": r.validation.get(task.main_metric)} for c, _, r in trained]
    resolved, learner, result = _best(task, trained)
    if test is None:
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
    if result.privacy:  # DP-SGD: the (epsilon, delta) the run spent and how it was accounted
        metrics["privacy"] = result.privacy
    metrics.update(extra or {})
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
