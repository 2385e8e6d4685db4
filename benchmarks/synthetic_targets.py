"""The synthetic-data targets of issue 25 on credit_default_taiwan (needs ../shared); prints JSON.

Usage: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/synthetic_targets.py [--methods copula ctgan]
       [--epochs 100] [--rows N]

The 30,000 rows split 80/20 (stratified, seed 42) by the config; each generator learns from the 80% and writes as
many synthetic rows (or --rows). LightGBM at its defaults trained on the synthetic rows and on the real 80% is
scored on the real 20% (ROC-AUC). Targets: train-on-synthetic within 0.05 of train-on-real; 0 exact copies.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

from modelyard.synthetic import synthesize
from modelyard.tasks import load_config

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "credit_default_taiwan" / "UCI_Credit_Card.csv"
CONFIG = {
    "name": "credit-synthetic-benchmark",
    "task": "tabular_classification",
    "data": {
        "train": str(DATA),
        "target_column": "default.payment.next.month",
        "column_types": {"SEX": "categorical", "EDUCATION": "categorical", "MARRIAGE": "categorical"},
        "split": {"validation": 0.0, "test": 0.2, "seed": 42, "stratify": True},
    },
}
TARGET_GAP = 0.05


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="+", default=["copula", "ctgan"])
    parser.add_argument("--epochs", type=int, default=100, help="ctgan passes over the data")
    parser.add_argument("--rows", type=int, default=24_000, help="synthetic rows (default: as many as real)")
    args = parser.parse_args()
    if not DATA.exists():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
        config = load_config(path)
        for method in args.methods:
            out = synthesize(config, args.rows, Path(folder) / f"{method}.csv", method, 42, args.epochs, quiet=True)
            report = out.report
            util, privacy = report["fidelity"]["utility"], report["privacy"]
            results[method] = {
                "rows": report["rows"],
                "real_train_rows": report["real_rows"],
                "real_test_rows": util["test_rows"],
                "roc_auc_train_on_real": util["train_on_real"]["roc_auc"],
                "roc_auc_train_on_synthetic": util["train_on_synthetic"]["roc_auc"],
                "gap": util["gap"],
                "gap_target_met": util["gap"] <= TARGET_GAP,
                "exact_copies": privacy["exact_copies"],
                "copies_replaced": privacy["copies_replaced"],
                "dcr": privacy["dcr"],
                "column_distance_mean": round(
                    sum(c["distance"] for c in report["fidelity"]["columns"].values())
                    / len(report["fidelity"]["columns"]),
                    4,
                ),
                "correlation_mean_abs_difference": report["fidelity"]["correlations"]["mean_abs_difference"],
                "seconds": report["seconds"],
                **({"epochs": args.epochs} if method == "ctgan" else {}),
            }
            print(json.dumps({method: results[method]}), file=sys.stderr, flush=True)
    print(json.dumps({"dataset": "credit_default_taiwan", "target_gap": TARGET_GAP, "methods": results}, indent=2))


if __name__ == "__main__":
    main()
