"""Uncertainty and calibration: bootstrap intervals and expected calibration error.

Classifier intervals work on per-example outcomes, so the same code serves the report (fresh predictions) and
the model card (pairs rebuilt from the confusion matrix saved at train time). Other tasks' metrics are ratios of
sums over units (forecast windows, users), resampled by `bootstrap_ratios`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

HEADLINE = ("accuracy", "macro_f1", "macro_precision", "macro_recall")


def _scores(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Headline metrics for a batch of resamples at once: y_* have shape (R, N); classes absent from a
    resample's truth are left out of its macro averages (as `classification_metrics` does)."""
    r = y_true.shape[0]
    offsets = (np.arange(r) * k)[:, None]
    support = np.bincount((y_true + offsets).ravel(), minlength=r * k).reshape(r, k)
    predicted = np.bincount((y_pred + offsets).ravel(), minlength=r * k).reshape(r, k)
    hits = y_true == y_pred
    tp = np.bincount((y_true + offsets)[hits], minlength=r * k).reshape(r, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    count = present.sum(1)
    return {
        "accuracy": hits.mean(1),
        "macro_f1": (f1 * present).sum(1) / count,
        "macro_precision": (precision * present).sum(1) / count,
        "macro_recall": (recall * present).sum(1) / count,
    }


def bootstrap_intervals(
    y_true, y_pred, num_classes: int, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap over examples: {metric: {"value", "low", "high"}} for the headline metrics."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        return {}
    point = {k: float(v[0]) for k, v in _scores(y_true[None], y_pred[None], num_classes).items()}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[np.ndarray]] = {k: [] for k in point}
    chunk = max(1, min(resamples, 2_000_000 // len(y_true)))
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, len(y_true), size=(min(chunk, resamples - start), len(y_true)))
        for key, values in _scores(y_true[idx], y_pred[idx], num_classes).items():
            samples[key].append(values)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for key, value in point.items():
        low, high = np.percentile(np.concatenate(samples[key]), [tail, 100 - tail])
        out[key] = {"value": value, "low": float(min(low, value)), "high": float(max(high, value))}
    return out


def bootstrap_ratios(
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    transforms: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    block: int = 1,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap of metrics f(sum(numerator) / sum(denominator)) over units, e.g. MAE = sum of
    absolute errors / points per forecast window, recall@10 = per-user recall / 1 per user.

    `block` > 1 resamples runs of consecutive units (circular block bootstrap), for units that overlap or are
    correlated (rolling forecast windows), so the interval is not narrowed by counting one error many times.
    """
    transforms = transforms or {}
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for key, (numerator, denominator) in parts.items():
        numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
        n = len(numerator)
        if n == 0 or denominator.sum() <= 0:
            continue
        finish = transforms.get(key, lambda x: x)
        size = max(1, min(block, n))
        blocks = -(-n // size)
        values = []
        chunk = max(1, min(resamples, 2_000_000 // n))
        for start in range(0, resamples, chunk):
            starts = rng.integers(0, n, size=(min(chunk, resamples - start), blocks, 1))
            idx = ((starts + np.arange(size)) % n).reshape(len(starts), -1)[:, :n]  # (R, n)
            with np.errstate(divide="ignore", invalid="ignore"):
                values.append(finish(numerator[idx].sum(1) / denominator[idx].sum(1)))
        value = float(finish(np.array(numerator.sum() / denominator.sum())))
        tail = (1 - confidence) / 2 * 100
        low, high = np.nanpercentile(np.concatenate(values), [tail, 100 - tail])
        out[key] = {"value": value, "low": float(min(low, value)), "high": float(max(high, value))}
    return out


def pairs_from_confusion(matrix: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) pairs a confusion matrix counts, in no particular order."""
    m = np.asarray(matrix, dtype=np.int64)
    true_idx, pred_idx = np.nonzero(m)
    counts = m[true_idx, pred_idx]
    return np.repeat(true_idx, counts), np.repeat(pred_idx, counts)


def reliability(confidence, correct, bins: int = 15) -> dict[str, Any]:
    """Equal-width confidence bins: mean confidence, accuracy and count per bin, and the expected calibration
    error (the count-weighted mean gap between confidence and accuracy)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    ece = float(np.abs(acc_sum - conf_sum).sum() / max(1, len(confidence)))
    return {"edges": edges, "confidence": mean_conf, "accuracy": accuracy, "count": count, "ece": ece}


def expected_calibration_error(confidence, correct, bins: int = 15) -> float:
    return reliability(confidence, correct, bins)["ece"]
