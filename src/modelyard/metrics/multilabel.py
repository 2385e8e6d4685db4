"""Multi-label metrics (scikit-learn) and per-label decision thresholds tuned for F1.

A prediction is a 0/1 matrix (rows x labels): a label is on when its score reaches its threshold. Macro averages
run over the labels with at least one true example in the split, as single-label `macro_f1` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)  # candidate thresholds for the per-label search
MIN_POSITIVES = 3  # validation examples a label needs for its own threshold; rarer labels share the global one


def decide(scores: np.ndarray, thresholds: np.ndarray, at_least_one: bool) -> np.ndarray:
    """The 0/1 label matrix: every label whose score reaches its threshold; with `at_least_one`, a row where none
    does gets its best-scoring label (the training data never had an empty label set)."""
    chosen = scores >= thresholds[None, :]
    if at_least_one and len(scores):
        empty = ~chosen.any(1)
        chosen[empty, scores[empty].argmax(1)] = True
    return chosen.astype(np.int8)


def _f1(y: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """F1 per column of boolean `chosen` (rows x candidates) against the 0/1 vector `y`."""
    tp = (chosen & (y[:, None] == 1)).sum(0)
    predicted = chosen.sum(0)
    return np.where(predicted + y.sum() > 0, 2 * tp / np.maximum(predicted + y.sum(), 1), 0.0)


def tune_thresholds(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-label thresholds maximising each label's F1 on (validation) scores; labels with fewer than
    MIN_POSITIVES true examples take the one threshold that maximises micro F1 over all labels, so a label
    seen once or twice is not fitted to those few rows. Ties go to the threshold nearest 0.5."""
    tie_break = -np.abs(GRID - 0.5) * 1e-9
    flat_y, flat_s = y.ravel(), scores.ravel()
    tp = np.array([((flat_s >= t) & (flat_y == 1)).sum() for t in GRID])
    predicted = np.array([(flat_s >= t).sum() for t in GRID])
    micro = 2 * tp / np.maximum(predicted + flat_y.sum(), 1)
    shared = float(GRID[np.argmax(micro + tie_break)])
    thresholds = np.full(y.shape[1], shared, dtype=np.float32)
    tuned = []
    for j in range(y.shape[1]):
        if y[:, j].sum() >= MIN_POSITIVES:
            f1 = _f1(y[:, j], scores[:, j][:, None] >= GRID[None, :])
            thresholds[j] = GRID[np.argmax(f1 + tie_break)]
            tuned.append(j)
    return thresholds, {"shared": shared, "tuned_labels": len(tuned), "min_positives": MIN_POSITIVES}


def multilabel_metrics(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """micro/macro F1, precision and recall, subset accuracy, Hamming loss, per-label P/R/F1 and support."""
    if len(y) == 0:
        return {}
    from sklearn.metrics import (  # slow to import
        accuracy_score,
        f1_score,
        hamming_loss,
        precision_recall_fscore_support,
    )

    p, r, f, s = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    present = np.asarray(s) > 0
    micro = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
    return {
        "micro_f1": float(micro[2]),
        "macro_f1": float(np.mean(f[present])) if present.any() else 0.0,
        "micro_precision": float(micro[0]),
        "micro_recall": float(micro[1]),
        "macro_precision": float(np.mean(p[present])) if present.any() else 0.0,
        "macro_recall": float(np.mean(r[present])) if present.any() else 0.0,
        "samples_f1": float(f1_score(y, pred, average="samples", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y, pred)),
        "hamming_loss": float(hamming_loss(y, pred)),
        "labels_per_row": float(pred.sum(1).mean()),
        "true_labels_per_row": float(y.sum(1).mean()),
        "samples": len(y),
        "per_label": {
            labels[j]: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j])}
            for j in range(len(labels))
        },
    }


def label_matrix(label_sets: list[tuple[str, ...]], labels: list[str]) -> np.ndarray:
    """The 0/1 matrix of label sets over `labels` (labels outside it are ignored)."""
    index = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(label_sets), len(labels)), dtype=np.int8)
    for i, row in enumerate(label_sets):
        for label in row:
            if label in index:
                y[i, index[label]] = 1
    return y


def set_answers(
    scores: np.ndarray, thresholds: np.ndarray, labels: list[str], top_k: int, at_least_one: bool, separator: str
) -> list[dict[str, Any]]:
    """One answer per row, shaped like single-label classification's (`label`, `score`, `probabilities`: the
    top_k scores) plus `labels`: every label at or above its threshold with its score and threshold, best first.
    `label` is that set in label order joined with the data's separator (as a training file writes it), `score`
    the highest score in the set (an empty set: the highest score of any label, which passed no threshold)."""
    chosen = decide(scores, thresholds, at_least_one)
    k = max(1, min(top_k, len(labels)))
    answers = []
    for row, picked in zip(scores, chosen, strict=True):
        order = np.argsort(-row, kind="stable")
        on = [j for j in order if picked[j]]
        answers.append(
            {
                "label": separator.join(labels[j] for j in sorted(on)),
                "score": float(row[on[0]] if on else row[order[0]]) if len(order) else 0.0,
                "labels": [
                    {"label": labels[j], "score": float(row[j]), "threshold": round(float(thresholds[j]), 4)}
                    for j in on
                ],
                "probabilities": [{"label": labels[j], "score": float(row[j])} for j in order[:k]],
            }
        )
    return answers
