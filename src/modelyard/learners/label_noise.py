"""Label-noise audit of a labelled text split: out-of-fold probabilities from a cheap classifier, confident
learning on them (data/label_audit.py), and what `train` does with the suspects (`data.label_noise.action`).

The default classifier is TF-IDF + logistic regression, 5-fold: on BANKING77 with 5% of the labels flipped it puts
99% of the flipped rows in its top 10% in about a minute on 2 cores, as well as logistic regression on frozen MiniLM
embeddings does (99.4%) at half the cost (benchmarks/label_noise_targets.py; docs/label_noise.md). `method:
encoder` uses the bundled encoder's embeddings instead; `both` averages the two (fewer false suspects).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from modelyard.data.label_audit import LabelAudit, audit, class_thresholds, contradicts
from modelyard.errors import ConfigError, DataError
from modelyard.fsutil import atomic_write_text
from modelyard.learners.tfidf import TfidfLinearLearner

if TYPE_CHECKING:  # pandas loads with training and validation, never with serving
    import pandas as pd

    from modelyard.config import Config
    from modelyard.protocols import PreparedData

Embed = Callable[[list[str]], np.ndarray]
SHOWN = 20  # rows named in warnings and the training log; every row is in data_report.json and the CSV
RELIABLE_ACCURACY = 0.75  # below it, out-of-fold flags on SST-2 were 9% precise (docs/label_noise.md)
CSV_COLUMNS = ("rank", "line", "text", "given_label", "suggested_label", "confidence", "given_label_probability")


@dataclass
class LabelNoiseResult:
    """An audit of the rows of `frame` (text, label; indexed by source line) with the method that made it."""

    frame: pd.DataFrame
    labels: list[str]
    audit: LabelAudit
    method: str
    seconds: float
    encoder: str | None = None  # the pretrained encoder whose embeddings the encoder method used

    def rows(self, only_suspects: bool = True, limit: int | None = None) -> list[dict[str, Any]]:
        """The suspects (or every row), most suspicious first, as the CLI, CSV and report show them."""
        order = self.audit.suspects if only_suspects else self.audit.ranked
        found = []
        for rank, i in enumerate(order[:limit], start=1):
            found.append(
                {
                    "rank": rank,
                    "line": int(self.frame.index[i]),
                    "text": str(self.frame["text"].iat[i]),
                    "given_label": str(self.frame["label"].iat[i]),
                    "suggested_label": self.labels[self.audit.suggested[i]],
                    "confidence": round(float(self.audit.suggested_confidence[i]), 4),
                    "given_label_probability": round(float(self.audit.self_confidence[i]), 4),
                }
            )
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            **({"encoder": self.encoder} if self.encoder else {}),
            "rows": len(self.frame),
            "suspects": len(self.audit.suspects),
            "estimated_noise_rate": round(self.audit.noise_rate, 4),
            "out_of_fold_accuracy": round(self.audit.accuracy, 4),
            "seconds": round(self.seconds, 1),
        }


def reliability_warning(result: LabelNoiseResult) -> str | None:
    """A warning when the auditing classifier is too weak for its flags to mean much: on weak-signal data (SST-2,
    out-of-fold accuracy 0.62) most of its disagreements are its own errors, not wrong labels."""
    if result.audit.accuracy >= RELIABLE_ACCURACY:
        return None
    return (
        f"label noise: the {result.method} auditor ranks the given label first for only {result.audit.accuracy:.0%} "
        f"of the training rows (out of fold), so most of its {len(result.audit.suspects)} flags are likely its own "
        "errors and `action: drop` would remove many correctly labelled rows; use `action: report` and check them"
    )


def encoder_embedder(path: Path, name: str, options: Any, precision: str) -> Embed:
    """Mean-pooled embeddings of the frozen pretrained encoder (the one `auto` would fine-tune for this data)."""
    from modelyard.learners.text import TextClassifierLearner

    def embed(texts: list[str]) -> np.ndarray:
        learner = TextClassifierLearner.pretrained(path, name, options, ["_"], texts)
        learner.precision = precision
        return learner.embed(texts)

    return embed


def check_audit_rows(train: pd.DataFrame) -> None:
    """Refuse a training split the audit cannot cross-validate: a class with one row would leave a fold without it
    (`validate` asks too when `data.label_noise` is set, so `train` does not fail on it later)."""
    counts = train["label"].value_counts()
    if counts.min() < 2:
        single = ", ".join(f"'{label}'" for label in counts[counts < 2].index[:5])
        raise DataError(
            f"a label audit needs at least 2 training rows of each class to cross-validate; {single} has 1",
            "add rows of that class, or remove data.label_noise",
        )


def out_of_fold(
    frame: pd.DataFrame, labels: list[str], method: str, embed: Embed | None, folds: int, seed: int
) -> np.ndarray:
    """(N, K) probabilities, each row's from a model that never saw it (stratified k-fold)."""
    from sklearn.model_selection import StratifiedKFold

    index = {label: i for i, label in enumerate(labels)}
    y = frame["label"].map(index).to_numpy()
    check_audit_rows(frame)
    # no more folds than the smallest class has rows, so every fold trains on every class
    folds = min(folds, int(frame["label"].value_counts().min()))
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    probs = []
    if method in ("encoder", "both"):
        if embed is None:
            raise ConfigError("data.label_noise.method: encoder needs a pretrained text encoder for this data")
        x = embed(frame["text"].tolist())
    # one BLAS thread: lbfgs's small products gain nothing from threads, and on a busy CPU spinning BLAS threads
    # made one fit of 320 rows take 15 s instead of 0.3 s
    with threadpool_limits(1, user_api="blas"):
        if method in ("tfidf", "both"):
            probs.append(_tfidf_folds(frame, labels, splits))
        if method in ("encoder", "both"):
            probs.append(_embedding_folds(x, y, len(labels), splits))
    return np.mean(probs, axis=0)


def _tfidf_folds(frame: pd.DataFrame, labels: list[str], splits: list) -> np.ndarray:
    out = np.zeros((len(frame), len(labels)))
    for fit_rows, held in splits:
        learner = TfidfLinearLearner(labels)
        learner.fit(frame.iloc[fit_rows])
        out[held] = learner.predict_proba(frame["text"].iloc[held].tolist())
    return out


def _embedding_folds(x: np.ndarray, y: np.ndarray, classes: int, splits: list) -> np.ndarray:
    """Standardised embeddings -> logistic regression (C 0.1: the best of 0.1 and 1 on BANKING77, and 3x faster)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out = np.zeros((len(y), classes))
    for fit_rows, held in splits:
        scaler = StandardScaler().fit(x[fit_rows])
        model = LogisticRegression(C=0.1, max_iter=1000).fit(scaler.transform(x[fit_rows]), y[fit_rows])
        out[np.ix_(held, model.classes_)] = model.predict_proba(scaler.transform(x[held]))
    return out


def audit_frame(
    frame: pd.DataFrame,
    labels: list[str],
    method: str = "tfidf",
    encoder: tuple[str, Embed] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> LabelNoiseResult:
    """Confident learning on out-of-fold probabilities of `frame`'s rows (columns text, label); `encoder` is
    (name, embed) for the encoder and both methods."""
    start = time.perf_counter()
    probs = out_of_fold(frame, labels, method, encoder[1] if encoder else None, folds, seed)
    y = frame["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    used = encoder[0] if encoder and method != "tfidf" else None
    return LabelNoiseResult(frame, labels, audit(y, probs), method, time.perf_counter() - start, used)


def check_label_noise(task: Any, config: Config) -> None:
    """Refuse `data.label_noise` for a task without a label audit (validate and train both ask)."""
    if config.data.label_noise is not None and not hasattr(task, "audit_labels"):
        raise ConfigError(f"data.label_noise: task '{config.task}' has no label audit; remove the key")


def apply_label_noise(task: Any, config: Config, data: PreparedData) -> LabelNoiseResult:
    """`data.label_noise` in `train`: audit the training split, then drop or down-weight the suspects (a suspect's
    weight becomes the probability of its given label) or only report them; the report, warnings and metrics say
    how many and which."""
    settings = config.data.label_noise
    check_label_noise(task, config)
    result = task.audit_labels(config, data)
    train = data.splits["train"]
    suspects = result.audit.suspects
    if settings.action == "drop":
        suspects = _keep_every_class(train, suspects, data.warnings)
        data.splits["train"] = train.drop(index=train.index[suspects])
    elif settings.action == "weight":
        weights = np.ones(len(train))
        weights[suspects] = np.clip(result.audit.self_confidence[suspects], 0.0, 1.0)
        data.splits["train"] = train.assign(weight=weights)
    affected = set(train.index[suspects])  # less the rows kept so that no class goes empty
    rows = [r for r in result.rows() if r["line"] in affected]
    data.report["label_noise"] = {**result.summary(), "action": settings.action, "rows_affected": rows}
    if note := reliability_warning(result):
        data.warnings.append(note)
    done = {"drop": "dropped", "weight": "down-weighted", "report": "kept (action: report)"}[settings.action]
    lines = ", ".join(str(r["line"]) for r in rows[:SHOWN]) + (", ..." if len(rows) > SHOWN else "")
    data.warnings.append(
        f"label noise: {len(rows)} of {len(train)} training rows look mislabelled ({result.method} out-of-fold "
        f"audit) and were {done}" + (f"; lines {lines}" if rows else "")
    )
    return result


def _keep_every_class(train: pd.DataFrame, suspects: np.ndarray, notes: list[str]) -> np.ndarray:
    """The suspects to drop, less those of a class they would empty: validation and test still hold that class,
    which a model that never learnt it could not score. Those rows stay, with a warning."""
    labels = train["label"].to_numpy()
    left = set(np.delete(labels, suspects))
    emptied = sorted({str(v) for v in labels[suspects]} - {str(v) for v in left})
    if not emptied:
        return suspects
    notes.append(
        f"label noise: every training row of {', '.join(repr(c) for c in emptied)} looks mislabelled; they are "
        "kept, as dropping them would leave the class without training rows"
    )
    return suspects[~np.isin(labels[suspects], emptied)]


def label_noise_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """What metrics.json keeps of the audit: the counts, and the lines affected."""
    found = dict(report["label_noise"])
    rows = found.pop("rows_affected")
    return {**found, "lines": [r["line"] for r in rows]}


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())


def flag_feedback(learner: Any, reference: pd.DataFrame, feedback: pd.DataFrame) -> tuple[np.ndarray, list[dict]]:
    """Feedback rows (text, label) a confident model contradicts, as a mask and as rows to show. The model's
    per-class thresholds come from its probabilities on `reference`: labelled rows it was not trained on (its
    validation or test split), so "confident" means as sure as it is on rows it gets right."""
    labels = list(learner.labels)
    index = {label: i for i, label in enumerate(labels)}
    known = reference[reference["label"].isin(index)]
    if not len(feedback) or not len(known) or not hasattr(learner, "predict_proba"):
        return np.zeros(len(feedback), dtype=bool), []
    thresholds = class_thresholds(known["label"].map(index).to_numpy(), learner.predict_proba(known["text"].tolist()))
    probs = learner.predict_proba(feedback["text"].tolist())
    mask = contradicts(feedback["label"].map(index).to_numpy(), probs, thresholds)
    rows = [
        {
            "text": str(feedback["text"].iat[i]),
            "given_label": str(feedback["label"].iat[i]),
            "model_label": labels[int(probs[i].argmax())],
            "confidence": round(float(probs[i].max()), 4),
        }
        for i in np.flatnonzero(mask)
    ]
    return mask, rows
