"""Does `backbone: auto` gain from trying the MLP beside LightGBM? Judged without the test split (issue 23).

Usage: python benchmarks/tabular_auto_cv.py [--folds 5]

The credit data is split as benchmarks/tabular_targets.py splits it (stratified 80/20, seed 42); the 20% test rows
are dropped and never read. On the 80%, stratified k-fold: `modelyard.train` runs the benchmark's own config on each
fold's training part (its 10% validation carve-out, the members, the selection between the best member alone and the
greedy ensemble, calibration) and scores the fold's held-out part, once with the default candidates (LightGBM and
the MLP) and once with `model.candidates: [lightgbm]`. Prints JSON: per-fold held-out ROC-AUC, what was kept, and
the mean gain of the default over LightGBM alone.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split
from tabular_targets import DATA, TARGET, modelyard_run

VARIANTS = {"default": None, "lightgbm_only": {"candidates": ["lightgbm"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=300)
    args = parser.parse_args()
    frame = pd.read_csv(DATA)
    rest, _ = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame[TARGET])
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0).split(rest, rest[TARGET])
    scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rows = []
    for k, (fit_rows, held_rows) in enumerate(folds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rest.iloc[fit_rows].to_csv(folder / "train.csv", index=False)
            rest.iloc[held_rows].to_csv(folder / "held.csv", index=False)
            row: dict = {"fold": k}
            for name, model in VARIANTS.items():
                run = folder / name
                run.mkdir()
                result, _ = modelyard_run(run, folder / "train.csv", folder / "held.csv", args.time_limit, model)
                scores[name].append(result["test"]["roc_auc"])
                row[name] = {"roc_auc": result["test"]["roc_auc"], "kept": result["kept"],
                             "seconds": result["wall_seconds"]}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    gains = np.array(scores["default"]) - np.array(scores["lightgbm_only"])
    print(json.dumps({
        "data": str(DATA),
        "protocol": f"{args.folds}-fold CV on the training 80% (test 20% unread), the tabular_targets config",
        "folds": rows,
        "mean_roc_auc": {name: round(float(np.mean(v)), 4) for name, v in scores.items()},
        "default_minus_lightgbm_only": {"mean": round(float(gains.mean()), 4), "per_fold": gains.round(4).tolist(),
                                        "positive_folds": int((gains > 0).sum())},
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
