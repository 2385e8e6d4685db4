"""`modelyard retrain`: train a challenger on the training data plus production feedback, and promote it
only if it beats the champion on the same frozen test split by a margin, worse on no guarded class.

The champion's test split is re-read and its fingerprint checked against the champion's manifest, then written
out and given to the challenger as its test file, so both are scored on exactly the same rows (and none of
them leaks into the challenger's training data). The newest inputs, a quarter of the feedback, are held out
to score both models on recent traffic (all rows of one input on one side; held-out rows whose input is in the
training data are left out, counted under `feedback.held_out_in_training_data`); the rest is appended to the
training data, except rows whose inputs are in the frozen test split (counted under `feedback.in_test_split`).
Text feedback the champion confidently contradicts is listed under `feedback.contradicting` and, with
`data.label_noise.action: drop`, left out.

Labelled text tasks need nothing more. Other tasks (tables) say how a logged input and its corrected label
become a training row with two task hooks: `feedback_example(config, logged_input, label) -> row | None` and
`retrain_layout(config, report) -> {"label": column, "columns": list | None, "data": data-config updates}`, where
`report` is the data report of the champion's config on its data; the layout may add `"keys"`, the columns a
feedback row is matched on against the test split and the training rows (default: every column but the label;
for a table, the model's feature columns, since a request carries no row ID or dropped column).
A regressor (no labels) takes any corrected value its hook accepts and is gated on its own error metric
(`main_metric`, lower is better when `greater_is_better` is false) on the test split and on held-out feedback.
A structured correction (a multi-label set, entity spans) reaches `feedback_example` as the stored list; the
layout may add `"suffix": "jsonl"` (files that hold lists) and `"score_columns"` (columns of the example kept
to score held-out feedback), and the task's `feedback_metric` (default: accuracy) scores that feedback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.config import Config
from modelyard.errors import DataError, ModelNotFoundError, UserError
from modelyard.home import home
from modelyard.tasks import config_from_dict, load_config

HELD_OUT_SHARE = 0.25
MIN_FEEDBACK_GATE = 30  # held-out feedback rows needed before their score (accuracy; rmse) can veto a promotion
HEADLINE = (
    "accuracy", "macro_f1", "macro_precision", "macro_recall", "micro_f1", "subset_accuracy", "entity_f1", "rmse",
    "mae", "r2", "samples",
)  # fmt: skip


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


def _text_example(value: Any, label: str) -> dict[str, Any] | None:
    return {"text": value, "label": label} if isinstance(value, str) else None


TEXT_LAYOUT = {"label": "label", "columns": ["text", "label"], "data": {"text_column": "text", "label_column": "label"}}


def feedback_frame(
    name: str, labels: list[str], example: Callable[[Any, str], dict[str, Any] | None] = _text_example
) -> tuple[pd.DataFrame, int]:
    """Logged predictions with a feedback label (one of `labels`; any value when there are none, as for a
    regressor) and a usable logged input (oldest first) as training rows (`example` makes one; text by default),
    and the count of those skipped. A correction `example` refuses is an error naming its prediction."""
    from modelyard.monitoring.prediction_log import read_predictions

    rows = read_predictions(model=name)
    rows = rows[rows["label"].notna()]
    inputs = [json.loads(x) if isinstance(x, str) else None for x in rows["input"]]
    given = [_given(json.loads(x)) for x in rows["label"]]
    made = []
    for prediction_id, value, label in zip(rows["prediction_id"], inputs, given, strict=True):
        try:  # a list (label set, spans) is checked by the task's `example` hook, label by label
            made.append(example(value, label) if not labels or isinstance(label, list) or label in labels else None)
        except DataError as err:
            raise DataError(f"feedback on prediction {prediction_id!r}: {err.message}", err.hint) from None
    usable = [m for m in made if m is not None]
    return pd.DataFrame(usable).reset_index(drop=True), len(made) - len(usable)


def _given(label: Any) -> Any:
    """A stored correction as `example` takes it: lists (label sets, entity spans) as they are, others as text."""
    return label if isinstance(label, list) else str(label)


def _row_keys(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One normalised string per row of its `keys` columns, the model's inputs (20000, 20000.0 and " 20000"
    alike), to find test rows: columns a request never carries (a row ID, a dropped group column) would make a
    logged row differ from the test row it is."""

    def norm(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip().lower()

    if not len(frame):
        return pd.Series([], dtype=str)
    return frame.reindex(columns=sorted(keys)).map(norm).agg("\x1f".join, axis=1)


def key_columns(layout: dict[str, Any], columns: Sequence[str]) -> list[str]:
    """The columns a feedback row is matched on: the layout's `keys` (a table model's feature columns), else
    every written column but the label."""
    return list(layout.get("keys") or [c for c in columns if c != layout["label"]])


def split_feedback(frame: pd.DataFrame, keys: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(for training, held out): the newest inputs (by their latest row), up to HELD_OUT_SHARE of the rows, are
    held out for scoring. `keys` names each row's input: every row of one input lands on the same side, since
    the same text asked twice would otherwise be scored on the challenger's own training rows."""
    held = round(len(frame) * HELD_OUT_SHARE) if len(frame) >= 4 else 0
    counts = keys.value_counts()
    chosen, taken = set(), 0
    for key in keys.iloc[::-1].drop_duplicates():  # newest first
        if taken + counts[key] <= held:
            chosen.add(key)
            taken += counts[key]
    out = keys.isin(chosen).to_numpy()
    return frame[~out], frame[out]


def challenger_config(
    config: Config,
    folder: Path,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    layout: dict[str, Any] = TEXT_LAYOUT,
) -> Config:
    """The user's config pointed at explicit train/validation/test files (no carving, no leakage)."""
    raw = config.model_dump(mode="json")
    columns = layout["columns"] or list(test.columns)
    files, suffix = {}, layout.get("suffix", "csv")
    for name, frame in (("train", train), ("validation", validation), ("test", test)):
        if len(frame):
            files[name] = str(folder / f"{name}.{suffix}")
            if suffix == "jsonl":  # cells that hold lists (entity spans) stay lists
                frame[columns].to_json(files[name], orient="records", lines=True, force_ascii=False)
            else:
                frame[columns].to_csv(files[name], index=False)
    updates = dict(layout["data"])
    raw["data"]["split"].update(updates.pop("split", {}), validation=0.0, test=0.0)
    raw["data"].update(
        train=files["train"], validation=files.get("validation"), test=files["test"], max_rows=None, format={}
    )
    raw["data"].update(updates)
    return config_from_dict(raw, str(folder / "challenger.yaml"))


def _scores(
    learner: Any, test: pd.DataFrame, feedback: pd.DataFrame, metric: str, feedback_metric: str = "accuracy"
) -> dict[str, Any]:
    result = learner.evaluate(test)
    scores = {k: result[k] for k in (*HEADLINE, metric) if k in result}
    per_class = result.get("per_class") or result.get("per_label") or result.get("per_type") or {}
    scores["per_class_f1"] = {k: round(v["f1"], 4) for k, v in per_class.items()}
    scores["feedback"] = (
        {"samples": len(feedback)}
        | {k: v for k, v in learner.evaluate(feedback).items() if k in (feedback_metric, "samples")}
        if len(feedback)
        else {"samples": 0}
    )
    return scores


def decide(
    champion: dict[str, Any],
    challenger: dict[str, Any],
    metric: str,
    margin: float,
    guarded: Sequence[str],
    greater_is_better: bool = True,
    feedback_metric: str = "accuracy",
) -> tuple[bool, str]:
    """Promote only if the challenger beats the champion by `margin` on the test metric (higher, or for an error
    such as rmse lower), is not worse on any guarded class, and (with enough held-out feedback) is not worse on
    recent feedback by `feedback_metric` (same direction)."""
    old, new = champion[metric], challenger[metric]
    sign = 1.0 if greater_is_better else -1.0
    direction = "" if greater_is_better else " (lower is better)"
    if sign * (new - old) <= margin:
        return False, f"{metric} {new:.4f} does not beat the champion's {old:.4f} by more than {margin:g}{direction}"
    for label in guarded:
        if label not in champion["per_class_f1"]:
            raise UserError(
                f"--guard-class {label!r} is not a class of the frozen test split",
                f"choose among: {', '.join(sorted(champion['per_class_f1'])[:10])}, ...",
            )
        before, after = champion["per_class_f1"][label], challenger["per_class_f1"].get(label, 0.0)
        if after < before:
            return False, f"guarded class {label!r} gets worse: F1 {after:.4f} < {before:.4f}"
    fb_old, fb_new, key = champion["feedback"], challenger["feedback"], feedback_metric
    if fb_old.get("samples", 0) >= MIN_FEEDBACK_GATE and sign * (fb_new[key] - fb_old[key]) < 0:
        return False, f"worse on recent feedback: {key} {fb_new[key]:.4f} against {fb_old[key]:.4f}{direction}"
    return True, f"{metric} {new:.4f} beats the champion's {old:.4f} by more than {margin:g}{direction}" + (
        f"; guarded classes not worse: {', '.join(guarded)}" if guarded else ""
    )


def _contradicted_feedback(
    champion: Any, prepared: Any, test: pd.DataFrame, feedback: pd.DataFrame, hooked: bool
) -> tuple[Any, list[dict[str, Any]]]:
    """Text feedback rows the champion confidently contradicts (confident learning's rule, thresholds from its
    validation split, or the frozen test split when there is none); `data.label_noise.action: drop` leaves them out."""
    from modelyard.learners.label_noise import flag_feedback

    if hooked or not len(feedback):
        return pd.Series(False, index=feedback.index).to_numpy(), []
    reference = prepared.splits["validation"] if len(prepared.splits["validation"]) else test
    return flag_feedback(champion.learner, reference, feedback)


def register(path: Path, name: str) -> str:
    """The registry version of a bundle: the one already registered for it, or a newly logged one."""
    from modelyard.tracking import registry
    from modelyard.tracking.runs import log_bundle

    held = registry.versions_held(name, path)  # only a version whose bundle is still the one in `path`
    return held[-1] if held else str(log_bundle(path).version)


def champion_version(champion: Any) -> str | None:
    """The champion's registry version, also when it was given as a bundle folder: the version that holds it."""
    if champion.version is not None:
        return champion.version
    from modelyard.tracking import registry

    held = registry.versions_held(champion.name, champion.path)
    return held[-1] if held else None


def register_challenger(path: Path, name: str, trained_on: str, promoted: bool, alias: str, reason: str) -> str:
    """Register the challenger under its champion's name, alias it `challenger`, and move `alias` to it when the
    gate promoted it; its registry version."""
    from modelyard.tracking import registry

    version = register(path, name)
    registry.promote(name, version, "challenger", trained_on)
    if promoted:
        registry.promote(name, version, alias, f"retrain gate: {reason}")
    return version


def _check_alias_holder(champion: Any, alias: str) -> None:
    """A UserError when `alias` points at a version other than the champion given: the gate would score the
    challenger against one model and then move the alias off another, with an audit reason about the wrong score."""
    from modelyard.tracking import registry

    try:
        info = registry.describe(champion.name)
    except ModelNotFoundError:  # never registered: the first promotion has no holder to compare with
        return
    held = info.aliases.get(alias)
    holder = next((v for v in info.versions if v.version == held), None)
    if holder is None or registry.holds_version(champion.path, holder):
        return
    given = f"version {champion.version}" if champion.version else str(champion.path)
    raise UserError(
        f"'{alias}' of model '{champion.name}' is version {held}, not the champion given ({given}); "
        "nothing was trained",
        f"retrain against the version that holds it: `modelyard retrain models:/{champion.name}@{alias}` "
        f"(or CONFIG --model models:/{champion.name}@{alias}), or give the challenger another --alias",
    )


def _check_gate(margin: float, beta: float, loss_tolerance: float) -> None:
    """A UserError for a gate option that would let a worse challenger through or cannot be used."""
    if not (math.isfinite(margin) and margin >= 0):
        raise UserError(
            f"--margin {margin}: give a finite number, 0 or more (0 = any improvement)",
            "the challenger must beat the champion by more than the margin; a negative one would promote a worse model",
        )
    if not (math.isfinite(loss_tolerance) and loss_tolerance >= 0):
        raise UserError(f"--loss-tolerance {loss_tolerance}: give a finite number, 0 or more (0 = no rise allowed)")
    if not (math.isfinite(beta) and beta > 0):
        raise UserError(f"--beta {beta}: give a finite number above 0 (DPO's default is 0.1)")


def unlearnable_feedback(task: str, name: str, classifier: bool, config_path: str | Path) -> UserError:
    """The refusal for a task retrain cannot learn from feedback, with the way to a new version instead: a
    classifier's labels (images, audio, image+text) still score live accuracy, so the user retrains on corrected
    files."""
    step = f"run `modelyard train {config_path}`, then `modelyard models promote {name} latest --alias champion`"
    hint = (
        f"its labelled feedback still scores live accuracy (`modelyard monitor`): add the corrected examples to "
        f"the training data and {step}"
        if classifier
        else f"train a new version on fresh data: {step}"
    )
    return UserError(
        f"retrain learns from feedback for text, multi-label text, token, table and chat models; '{task}' is not one",
        hint,
    )


def feedback_rules(
    task: Any, config: Config, classifier: bool, config_path: str | Path
) -> tuple[bool, Callable[[Any, str], dict[str, Any] | None]]:
    """(hooked, example): how feedback becomes training rows, from the task's hooks (its `retrain_layout` then
    says the files) or, for a text classifier, the text layout; any other task is refused before anything is
    written. Chosen by task, since an image+text classifier has text and label columns too but its rows need
    their image."""
    if hasattr(task, "feedback_example") and hasattr(task, "retrain_layout"):
        return True, lambda value, label: task.feedback_example(config, value, label)
    if config.task == "text_classification":
        return False, _text_example
    # a task with its own label check here refuses feedback (boxes, transcripts): nothing scores it live either
    scored = classifier and not hasattr(task, "feedback_label")
    raise unlearnable_feedback(config.task, config.name, scored, config_path)


def retrain(
    config_path: str | Path,
    model_ref: str | None = None,
    margin: float = 0.0,
    guard_classes: Sequence[str] = (),
    overrides: Sequence[str] = (),
    output: str | Path | None = None,
    alias: str = "champion",
    quiet: bool = True,
    beta: float = 0.1,
    loss_tolerance: float = 0.05,
) -> dict[str, Any]:
    """Train, compare, and move the alias (with an audit entry) only when the gate says so. A chat model is tuned
    on preference pairs with DPO (`beta`) and may lose at most `loss_tolerance` of its test loss
    (monitoring.preference_retrain); so is an assistant's chat model, on its grounded prompts
    (monitoring.assistant_retrain). Without `model_ref`, `config_path` is the champion (a bundle or
    models:/NAME@ALIAS) and the config it was trained with is used."""
    from modelyard import bundle, loader, pipeline
    from modelyard.tracking.registry import check_alias

    _check_gate(margin, beta, loss_tolerance)
    check_alias(alias)
    if output is not None:
        bundle.refuse_foreign_output(output)
    if model_ref is None and Path(config_path).is_file():
        raise UserError(
            f"{config_path} is a config, and no --model names the champion to retrain",
            "add --model models:/NAME@ALIAS (or a bundle path), or pass the champion bundle instead of the config",
        )
    champion = loader.load(str(config_path) if model_ref is None else model_ref)
    if output is not None:
        bundle.refuse_output_over(output, champion.path, "champion")
    _check_alias_holder(champion, alias)
    if model_ref is None:
        config_path = champion.path / "config.yaml"
    config = load_config(config_path, list(overrides))
    if config.name != champion.name:
        raise UserError(
            f"{config_path} trains '{config.name}' but the champion is '{champion.name}'",
            "retrain with the config the champion was trained from (same `name`)",
        )
    task = champion.task
    if getattr(task, "assists", False):
        if guard_classes:
            raise UserError("--guard-class applies to classifiers; an assistant is gated on preference pairs")
        from modelyard.monitoring.assistant_retrain import retrain_assistant

        return retrain_assistant(champion, config, margin, beta, loss_tolerance, output, alias, quiet)
    if getattr(task, "generates_text", False):
        if guard_classes:
            raise UserError("--guard-class applies to classifiers; a chat model is gated on preference pairs")
        from modelyard.monitoring.preference_retrain import retrain_chat

        return retrain_chat(champion, config, margin, beta, loss_tolerance, output, alias, quiet)
    hooked, example = feedback_rules(task, config, bool(champion.labels), config_path)
    labels = list(champion.labels or [])
    if guard_classes and not labels:
        raise UserError(f"--guard-class applies to classifiers; '{champion.name}' predicts a number")
    unknown = [c for c in guard_classes if c not in labels]
    if unknown:
        raise UserError(
            f"--guard-class {unknown[0]!r} is not a class of '{champion.name}'",
            f"choose among: {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}",
        )
    test = _frozen_test(champion)
    prepared = task.prepare(config)
    layout = task.retrain_layout(config, prepared.report) if hooked else TEXT_LAYOUT
    columns = layout["columns"] or list(test.columns)
    keys = key_columns(layout, columns)
    feedback, skipped = feedback_frame(champion.name, labels, example)
    fb_train, fb_eval = split_feedback(feedback, _row_keys(feedback, keys))
    seen = set(_row_keys(test, keys))
    base = prepared.splits["train"][columns]
    base = base[~_row_keys(base, keys).isin(seen).to_numpy()]
    # held-out inputs the challenger trains on anyway (base rows) would score its memory, not recent traffic
    in_training = _row_keys(fb_eval, keys).isin(set(_row_keys(base, keys)))
    fb_eval = fb_eval[~in_training.to_numpy()] if len(fb_eval) else fb_eval
    in_test = _row_keys(fb_train, keys).isin(seen)  # would inflate the test score
    fb_train = fb_train[~in_test.to_numpy()] if len(fb_train) else fb_train
    flagged, flagged_rows = _contradicted_feedback(champion, prepared, test, fb_train, hooked)
    dropped = config.data.label_noise is not None and config.data.label_noise.action == "drop"
    fb_train = fb_train[~flagged] if dropped else fb_train
    train = pd.concat([base, fb_train.reindex(columns=columns)], ignore_index=True)
    # The files the challenger trains on stay: its config names them, so it can be retrained, exported, audited.
    folder = home() / "retrain" / config.name / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder.mkdir(parents=True)
    cfg = challenger_config(config, folder, train, prepared.splits["validation"], test, layout)
    challenger = pipeline.train(cfg, output=output or pipeline.default_output(config.name), quiet=quiet)
    if challenger.manifest["data"]["test"]["sha256"] != champion.manifest["data"]["test"]["sha256"]:
        raise DataError(
            f"the challenger's test split ({challenger.manifest['data']['test']['rows']} rows) differs from the "
            f"champion's ({champion.manifest['data']['test']['rows']} rows); refusing to compare them",
            "its training data must cover every class of the test split (see the challenger's data_report.json)",
        )
    metric, higher = task.main_metric, task.greater_is_better
    # a regressor's feedback is scored by its own error metric, label sets and spans by the task's choice
    fb_metric = getattr(task, "feedback_metric", "accuracy" if labels else metric)
    evaluated = fb_eval.reindex(columns=[*columns, *layout.get("score_columns", [])])
    old = _scores(champion.learner, test, evaluated, metric, fb_metric)
    new = _scores(challenger.learner, test, evaluated, metric, fb_metric)
    promoted, reason = decide(old, new, metric, margin, guard_classes, higher, fb_metric)
    trained_on = f"retrained with {len(fb_train)} feedback rows"
    version = register_challenger(challenger.path, champion.name, trained_on, promoted, alias, reason)
    return {
        "champion": {"version": champion_version(champion), "path": str(champion.path), **old},
        "challenger": {"version": version, "path": str(challenger.path), **new},
        "metric": metric,
        "margin": margin,
        "guarded_classes": list(guard_classes),
        "feedback": {
            "used_for_training": len(fb_train),
            "held_out": len(fb_eval),
            "held_out_in_training_data": int(in_training.sum()),
            "in_test_split": int(in_test.sum()),
            # only text feedback is checked against the champion; a task with its own feedback hook is not
            **({} if hooked else {"contradicting": {"rows": flagged_rows, "dropped": dropped}}),
            "skipped": skipped,
        },
        "promoted": promoted,
        "alias": alias,
        "reason": reason,
    }
