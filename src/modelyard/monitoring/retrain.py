"""`modelyard retrain`: train a challenger on the training data plus production feedback, and promote it
only if it beats the champion on the same frozen test split by a margin, worse on no guarded class.

The champion's test split is re-read and its fingerprint checked against the champion's manifest, then written
out and given to the challenger as its test file, so both are scored on exactly the same rows (and none of
them leaks into the challenger's training data). The newest quarter of the feedback is held out to score both
models on recent traffic; the rest is appended to the training data, except rows whose text is in the frozen test
split (the decision counts them under `feedback.in_test_split`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.config import Config
from modelyard.errors import DataError, UserError
from modelyard.tasks import config_from_dict, load_config

HELD_OUT_SHARE = 0.25
MIN_FEEDBACK_GATE = 30  # held-out feedback rows needed before feedback accuracy can veto a promotion
HEADLINE = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "samples")


def _frozen_test(champion: Any) -> pd.DataFrame:
    prepared = champion.task.prepare(champion.config)
    expected = champion.manifest.get("data", {}).get("test", {}).get("sha256")
    actual = prepared.fingerprints.get("test", {}).get("sha256")
    if not expected or actual != expected:
        raise DataError(
            f"the champion's test split ({champion.config.data.test or champion.config.data.train}) "
            "is not the one it was evaluated on (fingerprint mismatch)",
            "restore the original data; champion and challenger must be compared on the same rows",
        )
    return prepared.splits["test"]


def feedback_frame(name: str, labels: list[str]) -> tuple[pd.DataFrame, int]:
    """Logged predictions with a feedback label and a logged text input (oldest first), and the skip count."""
    from modelyard.monitoring.prediction_log import read_predictions

    rows = read_predictions(model=name)
    rows = rows[rows["label"].notna()]
    texts = [json.loads(x) if isinstance(x, str) else None for x in rows["input"]]
    given = [json.loads(x) for x in rows["label"]]
    frame = pd.DataFrame({"text": texts, "label": [str(x) for x in given], "ts": rows["ts"].to_numpy()})
    usable = frame["text"].map(lambda t: isinstance(t, str)) & frame["label"].isin(labels)
    return frame[usable].drop(columns="ts").reset_index(drop=True), int((~usable).sum())


def split_feedback(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(for training, held out): the newest HELD_OUT_SHARE of rows are held out for scoring."""
    held = round(len(frame) * HELD_OUT_SHARE) if len(frame) >= 4 else 0
    return frame.iloc[: len(frame) - held], frame.iloc[len(frame) - held :]


def challenger_config(
    config: Config, folder: Path, train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame
) -> Config:
    """The user's config pointed at explicit train/validation/test files (no carving, no leakage)."""
    raw = config.model_dump(mode="json")
    files = {}
    for name, frame in (("train", train), ("validation", validation), ("test", test)):
        if len(frame):
            files[name] = str(folder / f"{name}.csv")
            frame[["text", "label"]].to_csv(files[name], index=False)
    raw["data"].update(
        train=files["train"],
        validation=files.get("validation"),
        test=files["test"],
        max_rows=None,
        text_column="text",
        label_column="label",
        format={},
    )
    raw["data"]["split"].update(validation=0.0, test=0.0)
    return config_from_dict(raw, str(folder / "challenger.yaml"))


def _scores(learner: Any, test: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, Any]:
    result = learner.evaluate(test)
    scores = {k: result[k] for k in HEADLINE if k in result}
    scores["per_class_f1"] = {k: round(v["f1"], 4) for k, v in result.get("per_class", {}).items()}
    scores["feedback"] = (
        {k: v for k, v in learner.evaluate(feedback).items() if k in ("accuracy", "samples")}
        if len(feedback)
        else {"samples": 0}
    )
    return scores


def decide(
    champion: dict[str, Any], challenger: dict[str, Any], metric: str, margin: float, guarded: Sequence[str]
) -> tuple[bool, str]:
    """Promote only if the challenger beats the champion by `margin` on the test metric, is not worse on any
    guarded class, and (with enough held-out feedback) is not worse on recent feedback."""
    old, new = champion[metric], challenger[metric]
    if new <= old + margin:
        return False, f"{metric} {new:.4f} does not beat the champion's {old:.4f} by more than {margin:g}"
    for label in guarded:
        if label not in champion["per_class_f1"]:
            raise UserError(
                f"--guard-class {label!r} is not a class of the frozen test split",
                f"choose among: {', '.join(sorted(champion['per_class_f1'])[:10])}, ...",
            )
        before, after = champion["per_class_f1"][label], challenger["per_class_f1"].get(label, 0.0)
        if after < before:
            return False, f"guarded class {label!r} gets worse: F1 {after:.4f} < {before:.4f}"
    fb_old, fb_new = champion["feedback"], challenger["feedback"]
    if fb_old.get("samples", 0) >= MIN_FEEDBACK_GATE and fb_new["accuracy"] < fb_old["accuracy"]:
        return False, (f"worse on recent feedback: accuracy {fb_new['accuracy']:.4f} < {fb_old['accuracy']:.4f}")
    return True, f"{metric} {new:.4f} beats the champion's {old:.4f} by more than {margin:g}" + (
        f"; guarded classes not worse: {', '.join(guarded)}" if guarded else ""
    )


def register(path: Path, name: str) -> str:
    """The registry version of a bundle: the one already registered for it, or a newly logged one."""
    from modelyard.tracking import registry
    from modelyard.tracking.runs import log_bundle

    try:
        known = registry.describe(name).versions
    except UserError:
        known = []
    for version in known:
        if version.bundle_path and Path(version.bundle_path).resolve() == path.resolve():
            return version.version
    return str(log_bundle(path).version)


def retrain(
    config_path: str | Path,
    model_ref: str,
    margin: float = 0.0,
    guard_classes: Sequence[str] = (),
    overrides: Sequence[str] = (),
    output: str | Path | None = None,
    alias: str = "champion",
    quiet: bool = True,
) -> dict[str, Any]:
    """Train, compare, and move the alias (with an audit entry) only when the gate says so."""
    from modelyard import bundle, loader, pipeline
    from modelyard.tracking import registry

    if output is not None:
        bundle.refuse_foreign_output(output)
    champion = loader.load(model_ref)
    config = load_config(config_path, list(overrides))
    if config.name != champion.name:
        raise UserError(
            f"{config_path} trains '{config.name}' but the champion is '{champion.name}'",
            "retrain with the config the champion was trained from (same `name`)",
        )
    if not (hasattr(config.data, "text_column") and hasattr(config.data, "label_column")):
        raise UserError(f"retrain with feedback supports labelled text tasks; '{config.task}' is not one")
    task = champion.task
    labels = list(champion.labels or [])
    unknown = [c for c in guard_classes if c not in labels]
    if unknown:
        raise UserError(
            f"--guard-class {unknown[0]!r} is not a class of '{champion.name}'",
            f"choose among: {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}",
        )
    test = _frozen_test(champion)
    prepared = task.prepare(config)
    feedback, skipped = feedback_frame(champion.name, labels)
    fb_train, fb_eval = split_feedback(feedback)
    seen = set(test["text"].str.strip().str.lower())
    base = prepared.splits["train"]
    base = base[~base["text"].str.strip().str.lower().isin(seen)]
    in_test = fb_train["text"].str.strip().str.lower().isin(seen)  # training on them would inflate the test score
    fb_train = fb_train[~in_test]
    train = pd.concat([base[["text", "label"]], fb_train], ignore_index=True)
    with tempfile.TemporaryDirectory(prefix="modelyard-retrain-") as tmp:
        cfg = challenger_config(config, Path(tmp), train, prepared.splits["validation"], test)
        challenger = pipeline.train(cfg, output=output or pipeline.default_output(config.name), quiet=quiet)
    if challenger.manifest["data"]["test"]["sha256"] != champion.manifest["data"]["test"]["sha256"]:
        raise DataError(
            f"the challenger's test split ({challenger.manifest['data']['test']['rows']} rows) differs from the "
            f"champion's ({champion.manifest['data']['test']['rows']} rows); refusing to compare them",
            "its training data must cover every class of the test split (see the challenger's data_report.json)",
        )
    metric = task.main_metric
    old, new = _scores(champion.learner, test, fb_eval), _scores(challenger.learner, test, fb_eval)
    promoted, reason = decide(old, new, metric, margin, guard_classes)
    version = register(challenger.path, champion.name)
    registry.promote(champion.name, version, "challenger", f"retrained with {len(fb_train)} feedback rows")
    if promoted:
        registry.promote(champion.name, version, alias, f"retrain gate: {reason}")
    return {
        "champion": {"version": champion.version, "path": str(champion.path), **old},
        "challenger": {"version": version, "path": str(challenger.path), **new},
        "metric": metric,
        "margin": margin,
        "guarded_classes": list(guard_classes),
        "feedback": {
            "used_for_training": len(fb_train),
            "held_out": len(fb_eval),
            "in_test_split": int(in_test.sum()),
            "skipped": skipped,
        },
        "promoted": promoted,
        "alias": alias,
        "reason": reason,
    }
