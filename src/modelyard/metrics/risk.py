"""Metrics a credit-risk or fraud team reads: ranking (ROC-AUC, Gini, KS), PR-AUC, Brier, calibration, a decision
threshold from costs or a recall target, group gaps for a protected column, and regression errors.

Pure functions over numpy arrays, scikit-learn underneath, under the names DESIGN.md fixes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CALIBRATION_BINS = 10


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """roc_auc, gini (2 AUC - 1), ks (max TPR - FPR gap), pr_auc (average precision), brier, and the confusion
    counts, precision and recall at `threshold`."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out: dict[str, Any] = {"samples": len(y), "positive_rate": float(y.mean()) if len(y) else 0.0}
    if len(np.unique(y)) == 2:
        auc = float(roc_auc_score(y, p))
        fpr, tpr, _ = roc_curve(y, p)
        out |= {
            "roc_auc": auc,
            "gini": 2 * auc - 1,
            "ks": float(np.max(tpr - fpr)),
            "pr_auc": float(average_precision_score(y, p)),
        }
    out["brier"] = float(brier_score_loss(y, p)) if len(y) else 0.0
    out |= at_threshold(y, p, threshold)
    return out


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    decided = p >= threshold
    tp, fp = int((decided & (y == 1)).sum()), int((decided & (y == 0)).sum())
    fn, tn = int((~decided & (y == 1)).sum()), int((~decided & (y == 0)).sum())
    return {
        "threshold": float(threshold),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "accuracy": (tp + tn) / max(len(y), 1),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, list[float]]:
    """Mean predicted vs observed positive rate per quantile bin (reliability diagram)."""
    from sklearn.calibration import calibration_curve as curve

    observed, predicted = curve(y, p, n_bins=bins, strategy="quantile")
    return {"predicted": predicted.round(5).tolist(), "observed": observed.round(5).tolist()}


def cost_threshold(y: np.ndarray, p: np.ndarray, false_positive: float, false_negative: float) -> tuple[float, float]:
    """The probability cut that minimises fp x cost_fp + fn x cost_fn on (y, p); returns (threshold, cost/row).
    Only cuts at distinct scores are weighed: `p >= cut` flags tied rows together, so the cost of a cut inside a
    run of ties would be one no threshold gives (and would depend on the order of the rows)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    none = 1.0 + 1e-9  # above every probability: flag no row
    if not len(y):
        return none, 0.0
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    last = np.append(np.flatnonzero(np.diff(ps)), len(ps) - 1)  # the last row of each run of equal scores
    tp = np.concatenate([[0], np.cumsum(ys)[last]])  # flag every row scored at least the k-th distinct score
    fp = np.concatenate([[0], np.cumsum(1 - ys)[last]])
    cost = false_positive * fp + false_negative * (ys.sum() - tp)
    best = int(np.argmin(cost))
    cut = none if best == 0 else float(ps[last[best - 1]])
    return cut, float(cost[best] / len(y))


def recall_threshold(y: np.ndarray, p: np.ndarray, recall: float) -> float:
    """The highest probability cut whose recall on (y, p) reaches `recall`."""
    positives = np.sort(p[y == 1])[::-1]
    if not len(positives):
        return 0.5
    k = int(np.ceil(recall * len(positives))) - 1
    return float(positives[int(np.clip(k, 0, len(positives) - 1))])


def group_metrics(y: np.ndarray, decided: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Selection rate (the share flagged positive: not `positive_rate`, the share that is positive), TPR and FPR
    per group value, and the largest gap between groups for each."""
    table: dict[str, dict[str, float]] = {}
    for value, mask in _by_group(groups):
        yg, dg = y[mask], decided[mask]
        table[value] = {
            "rows": int(mask.sum()),
            "selection_rate": float(dg.mean()) if mask.any() else 0.0,
            "tpr": float(dg[yg == 1].mean()) if (yg == 1).any() else float("nan"),
            "fpr": float(dg[yg == 0].mean()) if (yg == 0).any() else float("nan"),
        }
    gaps = {f"{key}_gap": _spread([v[key] for v in table.values()]) for key in ("selection_rate", "tpr", "fpr")}
    return {"groups": table, **gaps}


def _by_group(groups: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each value of a protected column (as text, sorted) with the mask of its rows."""
    text = np.array([str(g) for g in groups], dtype=object)
    return [(value, text == value) for value in sorted(set(text))]


def _spread(values: list[float]) -> float:
    """The largest difference between groups, NaNs (a group without rows of a class) left out."""
    kept = [v for v in values if not np.isnan(v)]
    return float(max(kept) - min(kept)) if len(kept) > 1 else 0.0


def multiclass_group_metrics(y: np.ndarray, decided: np.ndarray, groups: np.ndarray, labels: list[str]) -> dict:
    """Per group value: accuracy, and per class the share of rows decided as it (selection rate) and its recall;
    the gaps are the largest between groups, for the selection rate and recall over all classes."""
    table: dict[str, dict[str, Any]] = {}
    for value, mask in _by_group(groups):
        yg, dg = y[mask], decided[mask]
        table[value] = {
            "rows": int(mask.sum()),
            "accuracy": float((yg == dg).mean()),
            "selection_rate": {label: float((dg == k).mean()) for k, label in enumerate(labels)},
            "recall": {
                label: float((dg[yg == k] == k).mean()) if (yg == k).any() else float("nan")
                for k, label in enumerate(labels)
            },
        }
    rows = list(table.values())
    return {
        "groups": table,
        "accuracy_gap": _spread([v["accuracy"] for v in rows]),
        "selection_rate_gap": max(_spread([v["selection_rate"][label] for v in rows]) for label in labels),
        "recall_gap": max(_spread([v["recall"][label] for v in rows]) for label in labels),
    }


def regression_group_metrics(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Per group value: rows, MAE, mean target and mean prediction; the gaps in MAE and mean prediction."""
    table: dict[str, dict[str, Any]] = {}
    for value, mask in _by_group(groups):
        table[value] = {
            "rows": int(mask.sum()),
            "mae": float(np.mean(np.abs(pred[mask] - y[mask]))),
            "mean_target": float(np.mean(y[mask])),
            "mean_prediction": float(np.mean(pred[mask])),
        }
    rows = list(table.values())
    return {
        "groups": table,
        "mae_gap": _spread([v["mae"] for v in rows]),
        "mean_prediction_gap": _spread([v["mean_prediction"] for v in rows]),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """rmse, mae, mape (percent, over non-zero targets), r2."""
    from sklearn.metrics import r2_score

    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    if not len(y):
        return {}
    err = pred - y
    nonzero = np.abs(y) > 1e-12
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(100 * np.mean(np.abs(err[nonzero]) / np.abs(y[nonzero]))) if nonzero.any() else float("nan"),
        "r2": float(r2_score(y, pred)) if len(y) > 1 else float("nan"),
        "samples": len(y),
    }


def interval_coverage(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, float]:
    inside = (y >= low) & (y <= high)
    return {"interval_coverage": float(inside.mean()), "interval_width": float(np.mean(high - low))}
