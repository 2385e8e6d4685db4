"""Peak resident memory of fine-tuning multilingual-e5-small (issue 21 item 16: fit in 3 GB); prints JSON.

`modelyard.train` runs as a user runs it (`backbone: auto`, which picks e5 for Chinese; data checks, TF-IDF
baseline, training, evaluation, bundle, reload) on long Chinese reviews: `--rows` reviews of at least
`--min-chars` characters from online_shopping_10_cats (../shared/datasets), hotels left out (held-out data of
issue 21), balanced labels, 80/10/10 split. Long reviews are the memory worst case: `max_length` fits them at 256
tokens. Reported: the run's peak RSS (VmHWM, exact) and, from a 20 ms sampler, the peak of each phase (before
training: imports, data checks, baselines, model load; training; after: test scoring, bundle, reload), steps/s of
training and validation accuracy (never tune on test; test is printed for reference only).

Usage: nice -n 10 python benchmarks/e5_memory.py [--rows 800] [--set model.freeze_embeddings=false ...]
Each configuration runs in its own process (`--set` once per setting), so peaks do not mix.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

import modelyard
from modelyard.training.callbacks import Callback

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "online_shopping_10_cats"
HELD_OUT = "酒店"  # hotels: the reviewer's held-out domain
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """The process's exact peak (VmHWM), which a sampler can miss between samples."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")


class Sampler(threading.Thread):
    """RSS every 20 ms, attributed to the phase named last (`mark`)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.phase, self.peaks, self.running = "start", {}, True

    def mark(self, phase: str) -> None:
        self.sample()
        self.phase = phase

    def sample(self) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss_mb())

    def run(self) -> None:
        while self.running:
            self.sample()
            time.sleep(0.02)


class Phases(Callback):
    """Marks training's start, first step and end; counts steps and their time."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler, self.steps, self.start, self.seconds = sampler, 0, 0.0, 0.0

    def on_train_begin(self, state, control, config) -> None:
        self.sampler.mark("training")
        self.start = time.perf_counter()

    def on_step_end(self, state, control, logs) -> None:
        self.steps += 1

    def on_evaluate(self, state, control, metrics) -> None:
        self.sampler.mark("training")  # validation passes count as training (the loop's own evaluation)

    def on_train_end(self, state, control) -> None:
        self.seconds = time.perf_counter() - self.start
        self.sampler.mark("after training")


def slice_csv(rows: int, min_chars: int, seed: int, path: Path) -> dict:
    data = pd.concat(pd.read_csv(p) for p in sorted(SHARED.glob("online_shopping_10_cats.part*of4.csv")))
    data = data[(data["cat"] != HELD_OUT) & (data["review"].astype(str).str.len() >= min_chars)]
    picked = data.groupby("label").sample(rows // 2, random_state=seed).sample(frac=1, random_state=seed)
    picked[["review", "label"]].to_csv(path, index=False)
    chars = picked["review"].str.len()
    return {"rows": len(picked), "min_chars": min_chars, "median_chars": int(chars.median()), "seed": seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--min-chars", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0, help="which reviews are drawn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    sampler = Sampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "reviews.csv"
        data = slice_csv(args.rows, args.min_chars, args.seed, csv)
        config = Path(tmp) / "config.yaml"
        config.write_text(
            "name: e5-memory\ntask: text_classification\n"
            f"data:\n  train: {csv}\n  split: {{validation: 0.1, test: 0.1, seed: 42, stratify: true}}\n"
            "  text_column: review\n  label_column: label\nmodel:\n  backbone: auto\n",
            encoding="utf-8",
        )
        overrides = [f"train.epochs={args.epochs}", *args.overrides]
        phases = Phases(sampler)
        sampler.mark("before training")
        wall = time.perf_counter()
        model = modelyard.train(config, Path(tmp) / "bundle", overrides, quiet=True, callbacks=[phases], track=False)
        wall = time.perf_counter() - wall
        sampler.running = False
        metrics = json.loads((model.path / "metrics.json").read_text())
        spec = json.loads((model.path / "text_model.json").read_text())
    print(
        json.dumps(
            {
                "data": data,
                "overrides": overrides,
                "backbone": model.manifest["backbone"],
                "max_length": spec["max_length"],
                "frozen_embeddings": spec.get("frozen_embeddings"),
                "peak_rss_mb": round(peak_rss_mb()),
                "peak_rss_mb_by_phase": {k: round(v) for k, v in sampler.peaks.items()},
                "steps": phases.steps,
                "steps_per_second": round(phases.steps / phases.seconds, 3) if phases.seconds else None,
                "train_seconds": round(phases.seconds, 1),
                "wall_seconds": round(wall, 1),
                "validation_accuracy": round(metrics["validation"]["accuracy"], 4),
                "test_accuracy_for_reference": round(metrics["test"]["accuracy"], 4),
                "threads": __import__("torch").get_num_threads(),
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
