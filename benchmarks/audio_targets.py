"""Audio-classification targets on spoken digits (FSDD): whole speakers held out, accuracy >= 97%, against the
MFCC-statistics + logistic-regression baseline of the same run. Prints JSON.

Two protocols, both through `modelyard.train` on examples/spoken_digits.yaml (needs ../shared/datasets):
`split`: train on 4 speakers, test on theo and yweweler; `loso`: leave one speaker out, six runs, mean accuracy.
Run one at a time: the CPU is shared.

    nice -n 10 python benchmarks/audio_targets.py [--only split|loso] [--set train.epochs=10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import modelyard

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "spoken_digits.yaml"
RECORDINGS = ROOT.parent / "shared" / "datasets" / "free_spoken_digits" / "recordings"
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
TARGET = 0.97


def latency_ms(model: modelyard.Model, path: str, runs: int = 20) -> float:
    """Median wall time of one single-file prediction (decode, resample, front end, CNN)."""
    model.predict([path])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict([path])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def run_once(test_speakers: list[str], overrides: list[str], with_latency: bool = False) -> dict:
    speakers = "[" + ",".join(test_speakers) + "]"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = modelyard.train(
            CONFIG, output=Path(tmp) / "b", overrides=[f"data.test_speakers={speakers}", *overrides], quiet=True
        )
        metrics = json.loads((model.path / "metrics.json").read_text())
        baseline = metrics["baselines"]["mfcc_logreg"]["test"]["accuracy"]
        result = {
            "test_speakers": test_speakers,
            "test_accuracy": metrics["test"]["accuracy"],
            "test_macro_f1": metrics["test"]["macro_f1"],
            "mfcc_logreg_test_accuracy": baseline,
            "test_recordings": metrics["test"]["samples"],
            "train_seconds": metrics["train"]["seconds"],
            "train_samples_per_second": metrics["train"]["samples_per_second"],
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        if with_latency:
            sample = sorted(
                (ROOT.parent / "shared" / "datasets" / "free_spoken_digits" / "recordings").glob("3_theo_*")
            )
            result["predict_latency_ms_one_file"] = latency_ms(model, str(sample[0]))
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["split", "loso"])
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. train.epochs=10")
    args = parser.parse_args()
    out: dict = {"target_accuracy": TARGET, "overrides": args.set}
    if args.only in (None, "split"):
        split = run_once(["theo", "yweweler"], args.set, with_latency=True)
        split["pass"] = split["test_accuracy"] >= TARGET
        split["beats_baseline"] = split["test_accuracy"] > split["mfcc_logreg_test_accuracy"]
        out["four_vs_two"] = split
        print(json.dumps(split), file=sys.stderr, flush=True)
    if args.only in (None, "loso"):
        folds = []
        for speaker in SPEAKERS:
            folds.append(run_once([speaker], args.set))
            print(json.dumps(folds[-1]), file=sys.stderr, flush=True)
        mean = statistics.mean(f["test_accuracy"] for f in folds)
        base = statistics.mean(f["mfcc_logreg_test_accuracy"] for f in folds)
        out["leave_one_speaker_out"] = {
            "folds": folds,
            "mean_accuracy": round(mean, 4),
            "min_accuracy": min(f["test_accuracy"] for f in folds),
            "mfcc_logreg_mean_accuracy": round(base, 4),
            "pass": mean >= TARGET,
            "beats_baseline": mean > base,
        }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
