"""DP-SGD target: at epsilon 8 on a text set, accuracy within 5 points of the same model trained non-privately,
with the accountant's epsilon reported. Prints JSON.

SST-2 (../shared/datasets/sst2; its dev set is the test set): a seeded, class-balanced sample of `--train-rows`
training sentences plus `--validation-rows` for validation, both models `minilm-l6` trained by `modelyard.train`
on the same split. The non-private model is the ordinary recipe (every layer fine-tuned); the private one trains
the head and the top `train.privacy.train_layers` encoder layers with DP-SGD (Poisson batches, per-example
clipping, RDP-calibrated noise). The CPU is shared: run it alone, niced, in the background.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dp_targets.py > dp.json   # defaults: the measured recipe

About 20 minutes on two shared cores (docs/privacy_training.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

import modelyard

SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"


def write_data(folder: Path, train_rows: int, validation_rows: int, seed: int) -> None:
    """A balanced seeded sample of SST-2 train for train + validation; the official dev set as test."""
    train = pd.read_csv(SST2 / "train.tsv", sep="\t", quoting=3).rename(columns={"sentence": "text"})
    dev = pd.read_csv(SST2 / "dev.tsv", sep="\t", quoting=3).rename(columns={"sentence": "text"})
    per_class = (train_rows + validation_rows) // 2
    sample = train.groupby("label").sample(per_class, random_state=seed).sample(frac=1, random_state=seed)
    sample.iloc[:train_rows].to_csv(folder / "train.csv", index=False)
    sample.iloc[train_rows:].to_csv(folder / "validation.csv", index=False)
    dev.to_csv(folder / "test.csv", index=False)


def run(folder: Path, name: str, train: dict, max_length: int) -> dict:
    config = {
        "name": name,
        "task": "text_classification",
        "data": {"train": "train.csv", "validation": "validation.csv", "test": "test.csv"},
        "model": {"backbone": "minilm-l6", "max_length": max_length},
        "train": train,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    began = time.perf_counter()
    model = modelyard.train(path, output=folder / name, quiet=True, track=False)
    metrics = json.loads((model.path / "metrics.json").read_text())
    result = {
        "train": train,
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "test_macro_f1": round(metrics["test"]["macro_f1"], 4),
        "validation_accuracy": round(metrics["validation"]["accuracy"], 4),
        "steps": metrics["train"]["steps"],
        "train_seconds": metrics["train"]["seconds"],
        "wall_seconds": round(time.perf_counter() - began, 1),
        "tfidf_baseline_test_accuracy": round(metrics["baselines"]["tfidf_logreg"]["test"]["accuracy"], 4),
    }
    if "privacy" in metrics:
        result["privacy"] = metrics["privacy"]
    print(json.dumps({name: result}), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--validation-rows", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--private-batch", type=int, default=128)
    parser.add_argument("--private-epochs", type=int, default=4)
    parser.add_argument("--private-lr", type=float, default=2e-3)
    parser.add_argument("--train-layers", type=int, default=1)
    parser.add_argument("--public-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["private", "public"], default=None)
    args = parser.parse_args()
    if not SST2.is_dir():
        sys.exit(f"needs SST-2 at {SST2}")
    delta = 1e-5
    with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp:
        folder = Path(tmp)
        write_data(folder, args.train_rows, args.validation_rows, args.seed)
        results: dict = {
            "data": {
                "set": "SST-2 (GLUE), test = official dev set (872)",
                "train_rows": args.train_rows,
                "validation_rows": args.validation_rows,
                "sample_seed": args.seed,
            }
        }
        if args.only != "private":
            public = {"epochs": args.public_epochs, "batch_size": 32, "learning_rate": 1e-4}
            results["non_private"] = run(folder, "public", public, args.max_length)
        if args.only != "public":
            private = {
                "epochs": args.private_epochs,
                "batch_size": args.private_batch,
                "learning_rate": args.private_lr,
                "privacy": {
                    "epsilon": args.epsilon,
                    "delta": delta,
                    "max_grad_norm": 1.0,
                    "train_layers": args.train_layers,
                },
            }
            results["private"] = run(folder, "private", private, args.max_length)
        if "private" in results and "non_private" in results:
            gap = results["non_private"]["test_accuracy"] - results["private"]["test_accuracy"]
            results["accuracy_gap_points"] = round(100 * gap, 2)
            results["target"] = "private accuracy within 5 points of non-private at epsilon 8"
            results["target_met"] = gap <= 0.05
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
