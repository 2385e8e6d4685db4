"""What happens to member outputs after the models: a weighted ensemble chosen on validation, probability
calibration, the decision threshold, and conformal prediction intervals. Everything here is saved as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ENSEMBLE_ROUNDS = 25
ENSEMBLE_FOLDS = 5
BOOTSTRAP_ROUNDS = 200
INTERVAL_COVERAGE = 0.9
CALIBRATION_FOLDS = 5
CALIBRATION_MIN_CLASS = 100  # rows of the rarer class below which isotonic is not tried


def greedy_ensemble(outputs: dict[str, np.ndarray], score: Callable[[np.ndarray], float]) -> dict[str, float]:
    """Caruana et al. (2004) ensemble selection with replacement, as AutoGluon's WeightedEnsemble: add the member
    that most improves the validation score (higher is better), ENSEMBLE_ROUNDS times; weights are the counts."""
    names = list(outputs)
    counts = dict.fromkeys(names, 0)
    blend = np.zeros_like(outputs[names[0]], dtype=float)
    for step in range(1, ENSEMBLE_ROUNDS + 1):
        best = max(names, key=lambda n: score((blend * (step - 1) + outputs[n]) / step))
        blend = (blend * (step - 1) + outputs[best]) / step
        counts[best] += 1
    return {n: c / ENSEMBLE_ROUNDS for n, c in counts.items() if c}


def blend(outputs: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(w * outputs[n] for n, w in weights.items())


def out_of_fold_blend(
    outputs: dict[str, np.ndarray], y: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float], classes: bool
) -> np.ndarray | None:
    """The greedy ensemble's outputs with each row blended by weights fitted on the other ENSEMBLE_FOLDS - 1 parts
    of the rows (fewer parts when a class has fewer rows; None below two). Weights fitted and judged on the same
    validation rows flatter the ensemble: on the credit data it won validation in 3 of 5 folds and lost on every
    held-out part (benchmarks/tabular_auto_cv.py)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    smallest = int(np.unique(y, return_counts=True)[1].min()) if classes else len(y) // 2
    parts = min(ENSEMBLE_FOLDS, smallest)
    if parts < 2:
        return None
    splitter = (StratifiedKFold if classes else KFold)(parts, shuffle=True, random_state=0)
    found = np.zeros_like(next(iter(outputs.values())), dtype=float)
    for fit, held in splitter.split(y, y if classes else None):
        part = {n: out[fit] for n, out in outputs.items()}
        weights = greedy_ensemble(part, lambda out, truth=y[fit]: score(truth, out))
        found[held] = blend({n: out[held] for n, out in outputs.items()}, weights)
    return found


def paired_bootstrap_se(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float], classes: bool
) -> float:
    """Standard error of score(a) - score(b) over BOOTSTRAP_ROUNDS resamples of the rows (within each class for
    classifiers): how far apart two models' validation scores fall by the luck of the draw alone."""
    rng = np.random.default_rng(0)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if classes else [np.arange(len(y))]
    gaps = []
    for _ in range(BOOTSTRAP_ROUNDS):
        rows = np.concatenate([rng.choice(g, len(g)) for g in groups])
        gaps.append(score(y[rows], a[rows]) - score(y[rows], b[rows]))
    return float(np.std(gaps))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_calibration(y: np.ndarray, p: np.ndarray, method: str) -> dict[str, Any]:
    """Isotonic or Platt scaling of the positive-class probability; `auto` takes the one with the lower
    cross-validated Brier score on these rows (Platt below CALIBRATION_MIN_CLASS rows of either class)."""
    if method == "none" or len(np.unique(y)) < 2:
        return {"method": "none"}
    chosen_by = None
    if method == "auto":
        method, chosen_by = _choose_calibration(y, p)
    if method == "isotonic":
        x, fitted = _isotonic_centres(y, p)
        spec = {"method": "isotonic", "x": x.tolist(), "y": fitted.tolist()}
    else:
        spec = _platt(y, p)
    return {**spec, "chosen_by": chosen_by} if chosen_by else spec


def _isotonic_centres(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred isotonic regression (Oron and Flournoy, 2017): the isotonic fit's blocks joined at their mean
    score rather than as steps, so scores inside a block keep their order. Steps tie them: on the credit data's
    2,400 validation rows the step map cost 0.003 ROC-AUC (benchmarks/tabular_defaults_cv.py)."""
    from sklearn.isotonic import IsotonicRegression

    order = np.argsort(p, kind="mergesort")
    xs, ys = np.asarray(p, dtype=float)[order], np.asarray(y, dtype=float)[order]
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0).fit_transform(xs, ys)
    starts = np.r_[0, np.flatnonzero(np.diff(fitted)) + 1]
    centres = np.add.reduceat(xs, starts) / np.diff(np.r_[starts, len(xs)])
    return centres, fitted[starts]


def _platt(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6).fit(_logit(p)[:, None], y)
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def _choose_calibration(y: np.ndarray, p: np.ndarray) -> tuple[str, str | None]:
    """The calibration map with the lower Brier score on held-out folds of the rows it is fitted on."""
    from sklearn.model_selection import StratifiedKFold

    if min(int(y.sum()), int(len(y) - y.sum())) < CALIBRATION_MIN_CLASS:
        return "platt", None
    brier = {"platt": 0.0, "isotonic": 0.0}
    for fit, held in StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=0).split(p, y):
        for method in brier:
            spec = fit_calibration(y[fit], p[fit], method)
            brier[method] += float(np.sum((calibrate(p[held], spec) - y[held]) ** 2)) / len(y)
    best = min(brier, key=brier.get)
    scores = ", ".join(f"{m} {b:.5f}" for m, b in brier.items())
    return best, f"lower {CALIBRATION_FOLDS}-fold cross-validated Brier score on validation ({scores})"


def calibrate(p: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    if spec["method"] == "isotonic":
        return np.interp(p, spec["x"], spec["y"])
    if spec["method"] == "platt":
        return 1 / (1 + np.exp(-(spec["a"] * _logit(p) + spec["b"])))
    return p


def choose_threshold(y: np.ndarray, p: np.ndarray, evaluation: Any) -> dict[str, Any]:
    """From `evaluation.costs` (minimum expected cost on validation), `evaluation.target_recall`, or 0.5."""
    from modelyard.metrics.risk import cost_threshold, recall_threshold

    costs = getattr(evaluation, "costs", None)
    if costs is not None and len(y):
        cut, per_row = cost_threshold(y, p, costs.false_positive, costs.false_negative)
        return {
            "threshold": cut,
            "rule": f"minimum cost on validation (false positive {costs.false_positive:g}, "
            f"false negative {costs.false_negative:g}): {per_row:.4g} per row",
        }
    recall = getattr(evaluation, "target_recall", None)
    if recall is not None and len(y):
        return {"threshold": recall_threshold(y, p, recall), "rule": f"recall {recall:g} on validation"}
    return {"threshold": 0.5, "rule": "default 0.5 (set evaluation.costs or evaluation.target_recall)"}


def conformal_interval(y: np.ndarray, pred: np.ndarray, coverage: float = INTERVAL_COVERAGE) -> dict[str, float]:
    """Split conformal: the (1 - alpha) quantile of absolute validation residuals, with the finite-sample
    correction; prediction +- that half-width covers `coverage` of new rows exchangeable with validation."""
    residuals = np.sort(np.abs(np.asarray(y) - np.asarray(pred)))
    n = len(residuals)
    if not n:
        return {"coverage": coverage, "half_width": float("nan")}
    rank = min(n - 1, int(np.ceil((n + 1) * coverage)) - 1)
    return {"coverage": coverage, "half_width": float(residuals[rank]), "method": "split conformal on validation"}


def main_score(kind: str, y: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """The metric model selection watches: roc_auc for classifiers (one-vs-rest when multiclass), -rmse."""
    from sklearn.metrics import roc_auc_score

    if kind == "regression":
        return {"rmse": float(np.sqrt(np.mean((out - y) ** 2)))}
    if len(np.unique(y)) < 2:
        return {"roc_auc": 0.5}
    if kind == "binary":
        return {"roc_auc": float(roc_auc_score(y, out[:, 1]))}
    present = np.unique(y)
    probs = out[:, present] / np.maximum(out[:, present].sum(1, keepdims=True), 1e-12)
    if len(present) == 2:
        return {"roc_auc": float(roc_auc_score(y == present[1], probs[:, 1]))}
    return {"roc_auc": float(roc_auc_score(np.searchsorted(present, y), probs, multi_class="ovr"))}
