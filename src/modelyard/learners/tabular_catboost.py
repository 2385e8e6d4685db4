"""The CatBoost member of a tabular learner: a third model family beside LightGBM and the MLP (ordered boosting on
symmetric trees errs differently from LightGBM's leaf-wise trees, which is what an ensemble gains from).

Bagged as LightGBM is (`tabular_gbdt.fit_member`): k fold models on the training and validation rows, each
early-stopped on its own held-out fold, their outputs averaged; the validation rows' outputs are out-of-fold, so
the ensemble weights, calibration and threshold fitted on them stay honest. Categorical codes are read as numbers:
CatBoost's ONNX export refuses native categorical features (on the credit data native ones scored no better,
benchmarks/tabular_members_cv.py). Saved in CatBoost's own binary model format (.cbm, no pickle).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

FOLD_FILE = "catboost_fold{}.cbm"
DEFAULTS: dict[str, Any] = {
    "iterations": 1000,  # CatBoost's own default; separable data never stops early (log-loss keeps falling)
    "learning_rate": 0.05,
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "thread_count": 1,  # as LightGBM: threads spin-wait on a shared CPU; model.catboost.thread_count on your own
}
PATIENCE = 100


class _Deadline:
    """Stops boosting once the time budget is spent (CatBoost keeps the best iteration so far)."""

    def __init__(self, seconds: float | None) -> None:
        self.end = time.monotonic() + seconds if seconds else None

    def after_iteration(self, info: Any) -> bool:
        return self.end is None or time.monotonic() < self.end


def fit_catboost(
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    kind: str,
    classes: int,
    seconds: float | None,
    seed: int,
    params: dict[str, Any] | None = None,
) -> Any:
    """Boost until `xv` stops improving for PATIENCE rounds (or the budget ends); the best iteration is kept."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    settings = {**DEFAULTS, "random_seed": seed, "verbose": 0, "allow_writing_files": False, **(params or {})}
    if kind == "regression":
        model = CatBoostRegressor(**settings, loss_function="RMSE")
    else:
        loss = "Logloss" if kind == "binary" else "MultiClass"
        model = CatBoostClassifier(**settings, loss_function=loss, class_names=list(range(classes)))
    model.fit(x, y, eval_set=(xv, yv), early_stopping_rounds=PATIENCE, use_best_model=True,
              callbacks=[_Deadline(seconds)])  # fmt: skip
    return model


class BaggedCatBoost:
    """Fold models answering as one: (N, K) class probabilities or (N,) values, their mean."""

    def __init__(self, models: list[Any], kind: str) -> None:
        self.models = models
        self.kind = kind

    def outputs(self, x: np.ndarray) -> np.ndarray:
        return np.mean([_outputs(m, x, self.kind) for m in self.models], axis=0)

    @property
    def rounds(self) -> list[int]:
        return [int(m.tree_count_) for m in self.models]


def _outputs(model: Any, x: np.ndarray, kind: str) -> np.ndarray:
    return model.predict(x) if kind == "regression" else model.predict_proba(x)


def fit_member(
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    kind: str,
    classes: int,
    seconds: float | None,
    seed: int,
    params: dict[str, Any] | None,
    folds: int,
) -> tuple[BaggedCatBoost, np.ndarray]:
    """The bag (or, folds 1, one model early-stopped on validation) and its outputs on the validation rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds <= 1:
        model = fit_catboost(x, y, xv, yv, kind, classes, seconds, seed, params)
        return BaggedCatBoost([model], kind), _outputs(model, xv, kind)
    xa, ya = np.concatenate([x, xv]), np.concatenate([y, yv])
    splitter = (StratifiedKFold if kind == "binary" else KFold)(folds, shuffle=True, random_state=seed)
    started, models, oof = time.monotonic(), [], None
    for i, (fit_rows, held) in enumerate(splitter.split(xa, ya)):
        left = seconds - (time.monotonic() - started) if seconds else None
        share = max(left, 1.0) / (folds - i) if left is not None else None
        model = fit_catboost(xa[fit_rows], ya[fit_rows], xa[held], ya[held], kind, classes, share, seed + i, params)
        out = _outputs(model, xa[held], kind)
        oof = np.zeros((len(xa), *out.shape[1:])) if oof is None else oof
        oof[held] = out
        models.append(model)
    return BaggedCatBoost(models, kind), oof[len(x) :]


def save(bag: BaggedCatBoost, directory: Path) -> dict[str, Any]:
    """Write one .cbm per fold model (atomically); returns the member's entry of tabular.json."""
    from modelyard.fsutil import atomic_path

    files = [FOLD_FILE.format(i) for i in range(len(bag.models))]
    for name, model in zip(files, bag.models, strict=True):
        with atomic_path(directory / name) as tmp:
            model.save_model(str(tmp), format="cbm")
    return {"files": files}


def load(directory: Path, entry: dict[str, Any], kind: str) -> BaggedCatBoost:
    from catboost import CatBoostClassifier, CatBoostRegressor

    models = []
    for name in entry["files"]:
        model = CatBoostRegressor() if kind == "regression" else CatBoostClassifier()
        models.append(model.load_model(str(directory / name), format="cbm"))
    return BaggedCatBoost(models, kind)


def onnx_files(folds: int) -> list[str]:
    return [f"catboost_fold{i}.onnx" for i in range(folds)]


def write_onnx(bag: BaggedCatBoost, directory: Path) -> None:
    """One ONNX graph per fold model (CatBoost's own exporter), input `features` (N, F) float32."""
    from modelyard.fsutil import atomic_path

    for name, model in zip(onnx_files(len(bag.models)), bag.models, strict=True):
        with atomic_path(directory / name) as tmp:
            model.save_model(str(tmp), format="onnx")


def onnx_outputs(sessions: list[Any], x: np.ndarray, kind: str) -> np.ndarray:
    """The fold graphs' mean output, shaped as `BaggedCatBoost.outputs` (classifier graphs give a list of
    {class: probability} maps)."""
    found = []
    for session in sessions:
        result = session.run(None, {"features": x})
        if kind == "regression":
            found.append(np.asarray(result[0], dtype=float).reshape(-1))
        else:
            probs = result[1]
            keys = sorted(probs[0]) if isinstance(probs, list) else None
            found.append(np.array([[p[k] for k in keys] for p in probs]) if keys else np.asarray(probs))
    return np.mean(found, axis=0)
