"""Forecasting targets: the LSTM must beat naive and seasonal naive on test MAE. Prints JSON.

Trains the two example configs (airline passengers, Melbourne daily minimum temperatures; both need
../shared/datasets/timeseries beside the checkout) and a generated series the defaults were never tuned on
(multiplicative trend and a period of 9, default model options), each through `modelyard.train`.

    python benchmarks/forecast_targets.py [--only airline|temperatures|generated]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

import modelyard

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "airline": ROOT / "examples" / "forecasting_airline.yaml",
    "temperatures": ROOT / "examples" / "forecasting_temperatures.yaml",
}


def generated_config(folder: Path) -> Path:
    """300 weekly points: exponential growth, a 9-step cycle proportional to the level, noise."""
    rng = np.random.default_rng(7)
    t = np.arange(300)
    level = 20 * np.exp(0.006 * t)
    values = level * (1 + 0.25 * np.sin(2 * np.pi * t / 9)) * np.exp(rng.normal(0, 0.03, len(t)))
    dates = pd.date_range("2015-01-04", periods=len(t), freq="W-SUN").strftime("%Y-%m-%d")
    pd.DataFrame({"week": dates, "units": values.round(3)}).to_csv(folder / "generated.csv", index=False)
    config = {
        "name": "generated-series",
        "task": "forecasting",
        "data": {"train": "generated.csv", "time_column": "week", "target_column": "units"},
        "model": {"horizon": 9},
    }
    (folder / "generated.yaml").write_text(yaml.safe_dump(config))
    return folder / "generated.yaml"


def run(name: str, config: Path, folder: Path) -> dict:
    started = time.perf_counter()
    model = modelyard.train(config, output=folder / name, quiet=True)
    metrics = json.loads((model.path / "metrics.json").read_text())
    report = json.loads((model.path / "data_report.json").read_text())
    test = metrics["test"]
    baselines = {b: metrics["baselines"][b]["test"] for b in ("naive", "seasonal_naive")}
    return {
        "season_length": report["season_length"],
        "context_length": report["context_length"],
        "horizon": report["horizon"],
        "test_windows": test["windows"],
        "lstm": {k: round(test[k], 4) if test[k] is not None else None for k in ("mae", "rmse", "mape", "mase")},
        "naive": {k: round(v, 4) for k, v in baselines["naive"].items() if k in ("mae", "mase")},
        "seasonal_naive": {k: round(v, 4) for k, v in baselines["seasonal_naive"].items() if k in ("mae", "mase")},
        "beats_both_on_mae": test["mae"] < min(b["mae"] for b in baselines.values()),
        "train_seconds": metrics["train"]["seconds"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[*EXAMPLES, "generated"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads; small LSTMs are fastest on one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        configs = {**EXAMPLES, "generated": generated_config(folder)}
        for name, config in configs.items():
            if args.only and name != args.only:
                continue
            if name in EXAMPLES and not (ROOT.parent / "shared" / "datasets" / "timeseries").exists():
                results[name] = {"skipped": "needs ../shared/datasets/timeseries"}
                continue
            results[name] = run(name, config, folder)
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
