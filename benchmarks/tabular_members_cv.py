"""Which model families `backbone: auto` trains, and how it combines them, chosen without the test split (issue 23).

Usage: nice -n 10 python benchmarks/tabular_members_cv.py [--folds 5] [--native]

The credit data is split as benchmarks/tabular_targets.py splits it (stratified 80/20, seed 42); the 20% test rows
are dropped here and never read. On the 80%, stratified k-fold: each fold's training part is split as the product
splits it (a 10% validation carve-out), the members are fitted as `auto` fits them (5-fold bags over training +
validation, validation scores out-of-fold), the combination is fitted on the validation rows only, and everything
is scored on the fold's held-out part. Compared: LightGBM alone, CatBoost alone (categorical codes as numbers; with
`--native` also CatBoost's native categorical features, five times slower), Caruana's greedy ensemble of the two
(what `auto` does), and a logistic-regression stacker on the members' logits. The MLP is left out (minutes per
fit on two cores). Prints JSON: per-fold held-out ROC-AUC, and mean / gain over LightGBM.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from tabular_defaults_cv import TARGET, TYPES, training_rows

from modelyard.data import tabular
from modelyard.learners import tabular_catboost as cb
from modelyard.learners import tabular_gbdt as gbdt
from modelyard.learners import tabular_post as post
from modelyard.learners.tabular_encoding import TabularEncoder


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _with_category_ints(x: np.ndarray, cats: list[int]) -> np.ndarray:
    """An object matrix whose categorical codes are ints (missing: -1), as CatBoost's native categories need."""
    out = x.astype(object)
    for j in cats:
        out[:, j] = np.where(np.isnan(x[:, j]), -1, np.nan_to_num(x[:, j])).astype(int)
    return out


def fold_scores(frame, fit_rows: np.ndarray, held: np.ndarray, k: int, native: bool) -> dict[str, float]:
    fit = frame.iloc[fit_rows]
    train_idx, valid_idx = train_test_split(fit_rows, test_size=0.1, random_state=k, stratify=frame[TARGET][fit_rows])
    types, dropped = tabular.infer_types(frame.iloc[train_idx], TARGET, TYPES, [])
    encoder = TabularEncoder.fit(frame.iloc[train_idx], types, [*dropped, TARGET])
    x, y = encoder.transform(fit), frame[TARGET].to_numpy()
    pos = {r: i for i, r in enumerate(fit_rows)}
    t, v = [pos[r] for r in train_idx], [pos[r] for r in valid_idx]
    xh, yh = encoder.transform(frame.iloc[held]), y[held]
    yf = y[fit_rows]
    cats = encoder.categorical_indices
    val: dict[str, np.ndarray] = {}
    test: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    bag, val["lightgbm"] = gbdt.fit_member(x[t], yf[t], x[v], yf[v], "binary", 2, cats, None, None, 42, None, folds=5)
    test["lightgbm"] = gbdt.gbdt_outputs(bag, xh, "binary")
    seconds["lightgbm"] = time.perf_counter() - started
    started = time.perf_counter()
    cat, val["catboost"] = cb.fit_member(x[t], yf[t], x[v], yf[v], "binary", 2, None, 42, None, 5)
    test["catboost"] = cat.outputs(xh)
    seconds["catboost"] = time.perf_counter() - started
    if native:
        started = time.perf_counter()
        xo, xho = _with_category_ints(x, cats), _with_category_ints(xh, cats)
        bag, val["catboost_native"] = cb.fit_member(
            xo[t], yf[t], xo[v], yf[v], "binary", 2, None, 42, {"cat_features": cats}, 5
        )
        test["catboost_native"] = bag.outputs(xho)
        seconds["catboost_native"] = time.perf_counter() - started
    yv = yf[v]
    out = {name: float(roc_auc_score(yh, p[:, 1])) for name, p in test.items()}
    score = lambda o: float(roc_auc_score(yv, o[:, 1]))  # noqa: E731
    pair = {n: val[n] for n in ("lightgbm", "catboost")}
    weights = post.greedy_ensemble(pair, score)
    out["greedy_lightgbm_catboost"] = float(roc_auc_score(yh, post.blend({n: test[n] for n in pair}, weights)[:, 1]))
    out["greedy_weights"] = weights
    stack = LogisticRegression(C=1.0).fit(np.column_stack([_logit(val[n][:, 1]) for n in pair]), yv)
    stacked = stack.predict_proba(np.column_stack([_logit(test[n][:, 1]) for n in pair]))[:, 1]
    out["stacker_lightgbm_catboost"] = float(roc_auc_score(yh, stacked))
    out["seconds"] = {n: round(s, 1) for n, s in seconds.items()}
    out["catboost_rounds"] = cat.rounds
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--native", action="store_true")
    args = parser.parse_args()
    frame = training_rows()
    y = frame[TARGET].to_numpy()
    folds = []
    for k, (fit_rows, held) in enumerate(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(frame, y)):
        folds.append(fold_scores(frame, fit_rows, held, k, args.native))
        print(json.dumps(folds[-1]), flush=True)
    names = [n for n, v in folds[0].items() if isinstance(v, float)]
    summary = {}
    for name in names:
        values = np.array([f[name] for f in folds])
        gain = values - np.array([f["lightgbm"] for f in folds])
        summary[name] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
                         "gain_over_lightgbm": round(float(gain.mean()), 4),
                         "folds_better": int((gain > 0).sum())}  # fmt: skip
    print(json.dumps({"folds": args.folds, "held_out_roc_auc": summary}, indent=2))


if __name__ == "__main__":
    main()
