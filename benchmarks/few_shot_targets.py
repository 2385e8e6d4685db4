"""The few-shot target of issue 28: 8 examples per class sampled from BANKING77's training set (all 77 classes),
per seed, test accuracy on the full 3,080-row test set of (a) `backbone: auto` (which picks few-shot, SetFit's
method, below 30 examples per class), (b) the normal fine-tune of the same encoder on the same rows
(`backbone: minilm-l6`, its tuned defaults), (c) TF-IDF + logistic regression (the baseline every text run fits on
the same split); plus zero-shot from the label names (no training rows, so once). Prints JSON: every run and the
mean +- sd over seeds. Every run is an ordinary `modelyard.train` into a temporary bundle, nothing tracked.

Usage: nice -n 10 python benchmarks/few_shot_targets.py [--seeds 0 1 2 3 4] [--shots 8] [--classes 77]
       [--test-per-class 0] [--pair-iterations N] [--methods few_shot fine_tune] [--no-zero-shot] [--data DIR]
       [--output FILE]
On a busy machine, run one process per seed and method (`--seeds 0 --methods few_shot --no-zero-shot`) and
merge the printed JSON lines. Measured figures: docs/few_shot.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import modelyard

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "banking77"
# (a) auto, which picks minilm-l6+few-shot below 30 examples per class; (b) the normal fine-tune, same encoder
METHODS = {"few_shot": {"backbone": "auto"}, "fine_tune": {"backbone": "minilm-l6"}}


def sample(train: pd.DataFrame, classes: list[str], shots: int, seed: int) -> pd.DataFrame:
    """`shots` rows of each class, drawn with `seed` (a different draw per seed, as in SetFit's paper)."""
    rows = train[train["category"].isin(classes)]
    return rows.groupby("category", group_keys=False).sample(n=shots, random_state=seed)


def run(folder: Path, name: str, train: pd.DataFrame, test: Path, model: dict, seed: int) -> dict:
    """Train one config on `train` (no validation split: every sampled row trains) and read its metrics."""
    train_file = folder / f"{name}-train.csv"
    train.to_csv(train_file, index=False)
    config = {
        "name": f"few-shot-{name}",
        "task": "text_classification",
        "data": {
            "train": str(train_file),
            "test": str(test),
            "split": {"validation": 0.0, "test": 0.0},
            "text_column": "text",
            "label_column": "category",
        },
        "model": model,
        "train": {"seed": seed},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    start = time.perf_counter()
    trained = modelyard.train(path, folder / name, quiet=True, track=False)
    metrics = json.loads((trained.path / "metrics.json").read_text())
    return {
        "backbone": trained.manifest["backbone"],
        "accuracy": round(metrics["test"]["accuracy"], 4),
        "macro_f1": round(metrics["test"]["macro_f1"], 4),
        "tfidf_accuracy": round(metrics["baselines"]["tfidf_logreg"]["test"]["accuracy"], 4),
        "train_seconds": metrics["train"]["seconds"],
        "wall_seconds": round(time.perf_counter() - start, 1),
    }


def mean_sd(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 4), "sd": round(sd, 4), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--classes", type=int, default=77, help="the first N classes in sorted order")
    parser.add_argument("--test-per-class", type=int, default=0, help="0 = the whole test set of those classes")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--no-zero-shot", action="store_true", help="skip zero-shot (another process runs it)")
    parser.add_argument("--pair-iterations", type=int, help="few-shot model.pair_iterations (default: its own)")
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS), help="run only these (parallel runs)"
    )
    args = parser.parse_args()

    train = pd.read_csv(args.data / "train.csv")
    test = pd.read_csv(args.data / "test.csv")
    classes = sorted(train["category"].unique())[: args.classes]
    test = test[test["category"].isin(classes)]
    if args.test_per_class:  # a stratified subset, for machines too busy to score 3,080 rows per run
        test = test.groupby("category", group_keys=False).sample(n=args.test_per_class, random_state=0)
    result: dict = {
        "data": str(args.data),
        "classes": len(classes),
        "shots": args.shots,
        "test_rows": len(test),
        "seeds": args.seeds,
        "pair_iterations": args.pair_iterations,
        "torch_threads": __import__("torch").get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["MODELYARD_HOME"] = str(folder / "home")
        test_file = folder / "test.csv"
        test.to_csv(test_file, index=False)
        # zero-shot uses no training rows; `train` still reads one file (for the labels and the TF-IDF baseline)
        if not args.no_zero_shot:
            one_each = sample(train, classes, 1, 0)
            zero = run(folder, "zero-shot", one_each, test_file, {"backbone": "minilm-l6", "zero_shot": True}, 0)
            result["zero_shot_label_names"] = {k: zero[k] for k in ("backbone", "accuracy", "macro_f1", "wall_seconds")}
            print(json.dumps({"zero_shot_label_names": result["zero_shot_label_names"]}), flush=True)
        runs = []
        for seed in args.seeds:
            rows = sample(train, classes, args.shots, seed)
            for method in args.methods:
                model = dict(METHODS[method])
                if method == "few_shot" and args.pair_iterations:
                    model["pair_iterations"] = args.pair_iterations
                runs.append({"seed": seed, "method": method, **run(folder, method, rows, test_file, model, seed)})
                print(json.dumps(runs[-1]), flush=True)
    result["runs"] = runs
    accuracy = {m: [r["accuracy"] for r in runs if r["method"] == m] for m in args.methods}
    accuracy["tfidf"] = [r["tfidf_accuracy"] for r in runs if r["method"] == args.methods[0]]
    result["accuracy"] = {m: mean_sd(values) for m, values in accuracy.items()}
    if len(args.methods) == len(METHODS):
        means = {k: v["mean"] for k, v in result["accuracy"].items()}
        result["target_met"] = means["few_shot"] > max(means["fine_tune"], means["tfidf"])
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
