"""Classification metrics with scikit-learn, under the names DESIGN.md fixes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# the numbers `classification_metrics` reports: what tune.metric and train.early_stopping.metric may name
METRIC_NAMES = ("accuracy", "macro_f1", "macro_precision", "macro_recall")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    """accuracy, macro precision/recall/F1, a per-class table and the confusion matrix (rows: true)."""
    if len(y_true) == 0:
        return {}
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support  # slow to import

    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    present = np.asarray(s) > 0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f[present])),
        "macro_precision": float(np.mean(p[present])),
        "macro_recall": float(np.mean(r[present])),
        "samples": len(y_true),
        "per_class": {
            labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in idx
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def top_k_answers(probs: np.ndarray, labels: list[str], top_k: int) -> list[dict[str, Any]]:
    """One answer per row: the best label, its probability, and the top-k labels with probabilities."""
    k = max(1, min(top_k, len(labels)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties go to the lowest index, as argmax (metrics)
    return [
        {
            "label": labels[row[0]],
            "score": float(p[row[0]]),
            "probabilities": [{"label": labels[j], "score": float(p[j])} for j in row],
        }
        for p, row in zip(probs, order, strict=True)
    ]
