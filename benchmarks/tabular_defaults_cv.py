"""Choosing the tabular defaults without the test split (issue 23): cross-validation on the training 80% only.

Usage: nice -n 10 python benchmarks/tabular_defaults_cv.py [--folds 5] [--configs default lr01 ...] [--bagging]

The credit data is split exactly as benchmarks/tabular_targets.py splits it (stratified 80/20, seed 42); the 20%
test rows are dropped here and never read. On the 80%, stratified k-fold: each fold's training part fits LightGBM
(early-stopped on an inner 15% of that part, as `fit_gbdt` does) with each candidate setting, scored on the fold's
held-out part. The held-out parts also measure what each calibration map costs in ROC-AUC (fitted on one half,
scored on the other): a step function ties scores, and tied scores lose ranking. `--bagging` instead compares the
5-fold LightGBM bag with and without the 10% validation rows in its training data. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from modelyard.data import tabular
from modelyard.learners import tabular_gbdt as gbdt
from modelyard.learners import tabular_post as post
from modelyard.learners.tabular_encoding import TabularEncoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "credit_default_taiwan" / "UCI_Credit_Card.csv"
TARGET = "default.payment.next.month"
TYPES = {"SEX": "categorical", "EDUCATION": "categorical", "MARRIAGE": "categorical"}
CONFIGS: dict[str, dict] = {
    "default": {},
    "lr01": {"learning_rate": 0.01},
    "leaves7": {"num_leaves": 7},
    "mcs100": {"min_child_samples": 100},
    "ff05": {"feature_fraction": 0.5},
    "logloss_stop": {"metric": "binary_logloss"},
    "combo": {"learning_rate": 0.02, "num_leaves": 7, "min_child_samples": 100, "feature_fraction": 0.5},
}


def training_rows() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    train, _ = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame[TARGET])
    return train.reset_index(drop=True)


def calibration_costs(y: np.ndarray, p: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    """ROC-AUC lost and Brier score of each calibration map, fitted on one half of held-out rows and scored on the
    other: scikit-learn's step isotonic map (what `isotonic` was), the product's maps, and `auto`'s pick."""
    from sklearn.isotonic import IsotonicRegression

    a, b = train_test_split(np.arange(len(y)), test_size=0.5, random_state=seed, stratify=y)
    found: dict[str, dict[str, list[float]]] = {}
    for fit, score in ((a, b), (b, a)):
        raw = roc_auc_score(y[score], p[score])
        steps = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p[fit], y[fit])
        maps = {"none": p[score], "isotonic_steps": steps.predict(p[score])}
        for method in ("isotonic", "platt", "auto"):
            maps[method] = post.calibrate(p[score], post.fit_calibration(y[fit], p[fit], method))
        for name, q in maps.items():
            entry = found.setdefault(name, {"auc_lost": [], "brier": []})
            entry["auc_lost"].append(raw - roc_auc_score(y[score], q))
            entry["brier"].append(float(np.mean((q - y[score]) ** 2)))
    return {n: {k: float(np.mean(v)) for k, v in e.items()} for n, e in found.items()}


def bagging_gain(x: np.ndarray, y: np.ndarray, cats: list[int], folds: int) -> dict[str, dict[str, float]]:
    """The 5-fold bag trained on a fold's training part less a 10% validation carve-out (the old recipe) against
    the bag trained on all of it (validation scored out-of-fold), and against a second bag of another seed."""
    found: dict[str, list[float]] = {}
    for k, (fit_rows, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y)):
        train, _ = train_test_split(fit_rows, test_size=0.1, random_state=k, stratify=y[fit_rows])
        first, _ = gbdt.fit_bagged(x[train], y[train], "binary", 2, cats, None, None, 42, None, 5)
        second, _ = gbdt.fit_bagged(x[train], y[train], "binary", 2, cats, None, None, 1042, None, 5)
        both, _ = gbdt.fit_bagged(x[fit_rows], y[fit_rows], "binary", 2, cats, None, None, 42, None, 5)
        outs = {"bag_without_validation": first.predict(x[held]), "bag_with_validation": both.predict(x[held])}
        outs["two_bags_without_validation"] = (outs["bag_without_validation"] + second.predict(x[held])) / 2
        for name, p in outs.items():
            found.setdefault(name, []).append(float(roc_auc_score(y[held], p)))
        print(json.dumps({"fold": k, **{n: round(v[-1], 4) for n, v in found.items()}}), flush=True)
    base = found["bag_without_validation"]
    return {n: {"mean": round(float(np.mean(v)), 4), "paired_gain": round(float(np.mean(np.subtract(v, base))), 4)}
            for n, v in found.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--bagging", action="store_true", help="compare bagging recipes instead of settings")
    args = parser.parse_args()
    frame = training_rows()
    types, dropped = tabular.infer_types(frame, TARGET, TYPES, [])
    encoder = TabularEncoder.fit(frame, types, [*dropped, TARGET])
    x, y = encoder.transform(frame), frame[TARGET].to_numpy()
    cats = encoder.categorical_indices
    if args.bagging:
        print(json.dumps({"rows": len(frame), "cv_roc_auc": bagging_gain(x, y, cats, args.folds)}, indent=2))
        return
    scores: dict[str, list[float]] = {n: [] for n in args.configs}
    rounds: dict[str, list[int]] = {n: [] for n in args.configs}
    calibration: list[dict[str, dict[str, float]]] = []
    started = time.perf_counter()
    for k, (fit_rows, held) in enumerate(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(x, y)):
        inner, stop = train_test_split(fit_rows, test_size=0.15, random_state=k, stratify=y[fit_rows])
        for name in args.configs:
            booster = gbdt.fit_gbdt(x[inner], y[inner], x[stop], y[stop], "binary", 2, cats, None, None, 42 + k,
                                    CONFIGS[name])  # fmt: skip
            p = gbdt.gbdt_outputs(booster, x[held], "binary")[:, 1]
            scores[name].append(float(roc_auc_score(y[held], p)))
            rounds[name].append(int(booster.best_iteration))
            if name == args.configs[0]:
                calibration.append(calibration_costs(y[held], p, k))
        print(json.dumps({"fold": k, **{n: round(s[-1], 4) for n, s in scores.items()}}), flush=True)
    result = {
        "rows": len(frame),
        "folds": args.folds,
        "seconds": round(time.perf_counter() - started, 1),
        "cv_roc_auc": {
            n: {"mean": round(float(np.mean(s)), 4), "sd": round(float(np.std(s)), 4)} for n, s in scores.items()
        },
        "paired_gain_vs_first": {
            n: round(float(np.mean(np.subtract(s, scores[args.configs[0]]))), 4) for n, s in scores.items()
        },
        "rounds": {n: int(np.median(r)) for n, r in rounds.items()},
        "calibration_on_held_out_halves": {
            m: {k: round(float(np.mean([c[m][k] for c in calibration])), 5) for k in calibration[0][m]}
            for m in calibration[0]
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
