"""AutoGluon-Tabular on a given train/test CSV pair (run by benchmarks/tabular_targets.py with the python of a
throwaway venv, never modelyard's); prints one JSON line: test ROC-AUC, KS, PR-AUC and seconds per preset.

Usage: /tmp/agvenv/bin/python benchmarks/tabular_autogluon.py TRAIN.csv TEST.csv TARGET TIME_LIMIT_S
"""

import json
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from autogluon.tabular import TabularPredictor
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def main() -> None:
    train_path, test_path, target, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    train = pd.read_csv(train_path).drop(columns=["ID"])
    test = pd.read_csv(test_path).drop(columns=["ID"])
    y = test[target].to_numpy()
    out = {}
    for preset in ("medium_quality", "best_quality"):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            predictor = TabularPredictor(label=target, eval_metric="roc_auc", path=tmp, verbosity=0)
            try:
                predictor.fit(train, presets=preset, time_limit=limit)
            except (RuntimeError, AssertionError) as err:  # no model fitted in time (AssertionError: after DyStack)
                out[preset] = {"error": str(err)[:300], "fit_seconds": round(time.perf_counter() - started, 1)}
                print(json.dumps(out), flush=True)
                continue
            seconds = time.perf_counter() - started
            p = predictor.predict_proba(test.drop(columns=[target]))[1].to_numpy()
            fpr, tpr, _ = roc_curve(y, p)
            board = predictor.leaderboard(silent=True)
            out[preset] = {
                "roc_auc": round(float(roc_auc_score(y, p)), 4),
                "ks": round(float(np.max(tpr - fpr)), 4),
                "pr_auc": round(float(average_precision_score(y, p)), 4),
                "fit_seconds": round(seconds, 1),
                "best_model": str(board.iloc[0]["model"]),
                "models": len(board),
            }
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
