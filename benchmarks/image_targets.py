"""Image-classification targets: hymenoptera val accuracy >= 94% in < 10 min of training, beating the
frozen-features baseline, and sklearn's 8x8 digits with cnn-scratch >= 98.5% test accuracy. Prints JSON.

Trains the example configs through `modelyard.train` (hymenoptera needs ../shared/datasets beside the checkout;
the digits are written from scikit-learn first). Run one at a time: the CPU is shared.

    python benchmarks/image_targets.py [--only hymenoptera|digits]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import modelyard

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "hymenoptera": {
        "config": ROOT / "examples" / "image_classification.yaml",
        "split": "validation",
        "accuracy": 0.94,
        "train_seconds": 600,
        "sample": ROOT.parent / "shared" / "datasets" / "hymenoptera_data" / "val" / "bees",
    },
    "digits": {
        "config": ROOT / "examples" / "digits.yaml",
        "split": "test",
        "accuracy": 0.985,
        "sample": ROOT / "examples" / "data" / "digits" / "3",
    },
}


def write_digits() -> None:
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "examples" / "make_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_digits()


def latency_ms(model: modelyard.Model, image_path: str, runs: int = 20) -> float:
    """Median wall time of one single-image prediction (decode, transform, forward)."""
    model.predict([image_path])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict([image_path])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def run(name: str, overrides: list[str]) -> dict:
    target = TARGETS[name]
    if name == "digits":
        write_digits()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = modelyard.train(target["config"], output=Path(tmp) / name, overrides=overrides, quiet=True)
        wall = time.perf_counter() - started
        metrics = json.loads((model.path / "metrics.json").read_text())
        report = json.loads((model.path / "data_report.json").read_text())["images"]
        sample = sorted(Path(target["sample"]).glob("*"))[0]
        accuracy = metrics[target["split"]]["accuracy"]
        frozen = metrics["baselines"].get("frozen_features", {})
        baseline = frozen.get(target["split"], {}).get("accuracy")
        result = {
            "dataset": name,
            "backbone": model.manifest["backbone"],
            "validation_accuracy": metrics["validation"].get("accuracy"),
            "test_accuracy": metrics["test"].get("accuracy"),
            "eval_image_size": model.manifest.get("image_size"),
            "frozen_features_baseline": {
                **{s: frozen.get(s, {}).get("accuracy") for s in ("validation", "test")},
                "image_size": frozen.get("image_size"),
            },
            "train_seconds": metrics["train"]["seconds"],
            "train_samples_per_second": metrics["train"]["samples_per_second"],
            "precision": metrics["train"]["precision"],
            "epochs_run": len([line for line in (model.path / "history.jsonl").read_text().splitlines() if line]),
            "wall_seconds_total": round(wall, 1),
            "cpu_seconds_total": metrics["train"].get("cpu_seconds"),
            "overrides": overrides,
            "predict_latency_ms_one_image": latency_ms(model, str(sample)),
            "images_skipped": report["skipped"],
            "target": {"split": target["split"], "accuracy": target["accuracy"]},
            "pass": accuracy >= target["accuracy"],
        }
        if "train_seconds" in target:
            result["pass"] = result["pass"] and metrics["train"]["seconds"] < target["train_seconds"]
            result["beats_baseline"] = baseline is None or accuracy > baseline
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(TARGETS))
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. train.epochs=3")
    args = parser.parse_args()
    results = [run(name, args.set) for name in ([args.only] if args.only else TARGETS)]
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
