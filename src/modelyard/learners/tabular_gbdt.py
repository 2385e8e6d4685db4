"""The gradient-boosted trees member of a tabular learner: LightGBM with early stopping on validation, native
categorical splits, monotonic constraints, TreeSHAP reason codes (`pred_contrib`) and ONNX through onnxmltools.

Saved as LightGBM's text model format (no pickle).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

GBDT_FILE = "gbdt.txt"
ONNX_OPSET = 15  # the highest onnxmltools' LightGBM converter supports with onnx 1.23
DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 40,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "cat_smooth": 20.0,
    "max_cat_to_onehot": 8,
    # one thread: on a shared CPU, OpenMP threads spin-wait for each other (100 rounds on 24k rows: 1 s on one
    # thread, 35 s on two under load); set model.gbdt.num_threads on a machine of your own
    "num_threads": 1,
}
MAX_ROUNDS = 3000
PATIENCE = 100


def objective(kind: str, classes: int) -> dict[str, Any]:
    if kind == "binary":
        return {"objective": "binary", "metric": "auc"}
    if kind == "multiclass":
        return {"objective": "multiclass", "num_class": classes, "metric": "multi_logloss"}
    return {"objective": "regression", "metric": "l2"}


def _deadline(seconds: float | None):
    """A LightGBM callback that stops boosting once the time budget is spent (the best round so far is kept)."""
    import lightgbm as lgb

    end = time.monotonic() + seconds if seconds else None

    def stop(env: Any) -> None:
        if end is not None and time.monotonic() > end:
            best = env.model.best_iteration or env.iteration
            raise lgb.callback.EarlyStopException(best, env.evaluation_result_list)

    return stop


def fit_gbdt(
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    kind: str,
    classes: int,
    categorical: list[int],
    monotone: list[int] | None,
    seconds: float | None,
    seed: int,
    params: dict[str, Any] | None = None,
) -> Any:
    """Boost until validation stops improving for PATIENCE rounds (or the budget ends); best iteration kept."""
    import lightgbm as lgb

    settings = {**DEFAULTS, **objective(kind, classes), "seed": seed, "verbose": -1}
    settings |= params or {}
    if monotone and any(monotone):
        settings |= {"monotone_constraints": monotone, "monotone_constraints_method": "advanced"}
    train = lgb.Dataset(x, y, categorical_feature=categorical or "auto", free_raw_data=False)
    valid = lgb.Dataset(xv, yv, reference=train, categorical_feature=categorical or "auto")
    callbacks = [lgb.early_stopping(PATIENCE, verbose=False), _deadline(seconds)]
    booster = lgb.train(settings, train, MAX_ROUNDS, valid_sets=[valid], callbacks=callbacks)
    booster.free_dataset()
    return booster


def gbdt_outputs(booster: Any, x: np.ndarray, kind: str) -> np.ndarray:
    """(N, K) class probabilities, or (N,) values."""
    out = booster.predict(x, num_iteration=booster.best_iteration or None)
    if kind == "binary":
        return np.stack([1 - out, out], axis=1)
    return out


def contributions(booster: Any, x: np.ndarray, kind: str, classes: int, target: int) -> np.ndarray:
    """TreeSHAP values (N, F + 1, last = expected value) on the raw scale (log-odds for classifiers)."""
    contrib = booster.predict(x, pred_contrib=True, num_iteration=booster.best_iteration or None)
    if kind == "multiclass":
        width = contrib.shape[1] // classes
        return contrib[:, target * width : (target + 1) * width]
    return contrib


def save_gbdt(booster: Any, directory: Path) -> None:
    from modelyard.fsutil import atomic_write_text

    atomic_write_text(directory / GBDT_FILE, booster.model_to_string(num_iteration=booster.best_iteration or None))


def load_gbdt(directory: Path) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=(directory / GBDT_FILE).read_text(encoding="utf-8"))


def gbdt_onnx(booster: Any, features: int) -> bytes:
    """The booster as an ONNX graph: input `features` (N, F) float32, outputs label and probabilities/values."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_lightgbm(
        booster, initial_types=[("features", FloatTensorType([None, features]))], target_opset=ONNX_OPSET, zipmap=False
    )
    return model.SerializeToString()
