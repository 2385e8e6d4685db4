"""Audio-classification targets on spoken digits (FSDD): whole speakers held out, accuracy >= 97%, against the
MFCC-statistics + logistic-regression baseline fitted on the same split. Prints JSON.

Protocols (examples/spoken_digits.yaml; needs ../shared/datasets/free_spoken_digits):
- `end_to_end`: `modelyard.train` as a user runs it (bundle, baseline, latency): train on 4 speakers, test on
  theo and yweweler.
- `folds`: leave-one-speaker-out (six folds, mean accuracy). The data is read and checked once, then for each
  fold the task's own learner is built, trained by the shared training loop (`training.loop.fit`) and scored on
  the held-out voice, beside the baseline.
- `validation`: how the recipe's defaults were chosen without looking at a test voice: theo and yweweler are left
  out altogether, and each of the four training speakers in turn is the validation voice for a model trained on
  the other three (mean accuracy; `--speakers` runs fewer of them).
Run one at a time: the CPU is shared.

    nice -n 10 python benchmarks/audio_targets.py [--only end_to_end|folds|validation] [--set train.epochs=10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import modelyard
from modelyard.config import SplitConfig
from modelyard.data.audio import speaker_splits
from modelyard.learners.audio import WaveStore
from modelyard.learners.mfcc_logreg import mfcc_logreg_baseline
from modelyard.protocols import PreparedData
from modelyard.tasks import get_task, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "spoken_digits.yaml"
RECORDINGS = ROOT.parent / "shared" / "datasets" / "free_spoken_digits" / "recordings"
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
HELD_OUT = ["theo", "yweweler"]
TARGET = 0.97


def latency_ms(model: modelyard.Model, path: str, runs: int = 20) -> float:
    """Median wall time of one single-file prediction (decode, resample, front end, network)."""
    model.predict([path])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict([path])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def end_to_end(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = modelyard.train(CONFIG, output=Path(tmp) / "b", overrides=overrides, quiet=True, track=False)
        metrics = json.loads((model.path / "metrics.json").read_text())
        accuracy = metrics["test"]["accuracy"]
        baseline = metrics["baselines"]["mfcc_logreg"]["test"]["accuracy"]
        return {
            "test_speakers": HELD_OUT,
            "test_accuracy": accuracy,
            "test_macro_f1": metrics["test"]["macro_f1"],
            "test_recordings": metrics["test"]["samples"],
            "mfcc_logreg_test_accuracy": baseline,
            "backbone": model.manifest["backbone"],
            "train_seconds": metrics["train"]["seconds"],
            "train_samples_per_second": metrics["train"]["samples_per_second"],
            "wall_seconds_total": round(time.perf_counter() - started, 1),
            "predict_latency_ms_one_file": latency_ms(model, str(RECORDINGS / "3_theo_0.wav")),
            "pass": accuracy >= TARGET,
            "beats_baseline": accuracy > baseline,
        }


def folds(overrides: list[str], speakers: list[str], excluded: tuple[str, ...] = ()) -> dict:
    from accelerate.utils import set_seed

    from modelyard.training.loop import fit

    config = load_config(CONFIG, overrides)
    task = get_task(config.task)
    prepared = task.prepare(config)
    everything = pd.concat([prepared.splits[n] for n in ("train", "validation", "test")], ignore_index=True)
    everything = everything[~everything["speaker"].isin(excluded)].reset_index(drop=True)
    store = WaveStore()  # decoded once, shared by every fold
    mfcc: dict = {}  # the baseline's features, computed once per file

    def run(test_speakers: list[str]) -> dict:
        splits, _ = speaker_splits(everything, SplitConfig(validation=0.0, test=0.0), test_speakers)
        data = PreparedData(splits=splits, report=dict(prepared.report))
        set_seed(config.train.seed)
        learner = task.build(config, data)
        learner.store = store
        started = time.perf_counter()
        result = fit(learner, config, data, quiet=True, main_metric="accuracy", greater_is_better=True)
        test = learner.evaluate(splits["test"])
        labels = sorted(splits["train"]["label"].unique())
        baseline = mfcc_logreg_baseline(splits, labels, store.get, mfcc)["test"]["accuracy"]
        out = {
            "test_speakers": test_speakers,
            "test_accuracy": round(test["accuracy"], 4),
            "test_recordings": test["samples"],
            "mfcc_logreg_test_accuracy": round(baseline, 4),
            "train_seconds": round(result.seconds, 1),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(out), file=sys.stderr, flush=True)
        return out

    loso = [run([speaker]) for speaker in speakers]
    mean = statistics.mean(f["test_accuracy"] for f in loso)
    base = statistics.mean(f["mfcc_logreg_test_accuracy"] for f in loso)
    return {
        "leave_one_speaker_out" if not excluded else "validation_speaker_out": {
            "folds": loso,
            "mean_accuracy": round(mean, 4),
            "min_accuracy": min(f["test_accuracy"] for f in loso),
            "mfcc_logreg_mean_accuracy": round(base, 4),
            "pass": mean >= TARGET,
            "beats_baseline": mean > base,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["end_to_end", "folds", "validation"])
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. train.epochs=10")
    parser.add_argument("--speakers", default=None, help="folds to run (comma-separated voices; default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 suits a shared 2-core machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"target_accuracy": TARGET, "overrides": args.set, "threads": args.threads}
    if args.only in (None, "end_to_end"):
        out["end_to_end"] = end_to_end(args.set)
        print(json.dumps(out["end_to_end"]), file=sys.stderr, flush=True)
    if args.only in (None, "folds"):
        out["folds"] = folds(args.set, args.speakers.split(",") if args.speakers else SPEAKERS)
    if args.only == "validation":
        voices = args.speakers.split(",") if args.speakers else [s for s in SPEAKERS if s not in HELD_OUT]
        if set(voices) & set(HELD_OUT):
            parser.error(f"validation never uses the test voices {HELD_OUT}")
        out["validation"] = folds(args.set, voices, tuple(HELD_OUT))
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
