"""Recommendation target: on MovieLens 100K, matrix factorisation's test recall@10 is at least 1.5x the
popularity baseline's. Needs ../shared/datasets/movielens_100k beside the checkout (research licence: read in
place, never copied). Prints JSON.

    python benchmarks/recsys_targets.py [--set model.loss=sampled_softmax ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import modelyard

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "recommendation_movielens.yaml"
HEADLINE = ("recall@10", "ndcg@10", "hit_rate@10", "coverage@10", "recall@20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=1, help="torch threads; small embedding models need one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (ROOT.parent / "shared" / "datasets" / "movielens_100k").exists():
        json.dump({"skipped": "needs ../shared/datasets/movielens_100k"}, sys.stdout)
        print()
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = modelyard.train(CONFIG, output=Path(tmp) / "bundle", overrides=args.overrides, quiet=True)
        metrics = json.loads((model.path / "metrics.json").read_text())
        cold = model.predict([{"user": "no-such-user", "k": 3}])[0]
        latency = time.perf_counter()
        for _ in range(100):
            model.predict([{"user": "196", "k": 10}])
        latency_ms = (time.perf_counter() - latency) * 10
    test, popularity = metrics["test"], metrics["baselines"]["popularity"]["test"]
    ratio = test["recall@10"] / popularity["recall@10"]
    json.dump(
        {
            "overrides": args.overrides,
            "users_evaluated": test["users"],
            "mf": {k: round(test[k], 4) for k in HEADLINE},
            "popularity": {k: round(popularity[k], 4) for k in HEADLINE},
            "recall@10_ratio": round(ratio, 3),
            "meets_1.5x": ratio >= 1.5,
            "cold_start_answer": cold,
            "predict_latency_ms": round(latency_ms, 2),
            "train_seconds": metrics["train"]["seconds"],
            "steps": metrics["train"]["steps"],
            "wall_seconds": round(time.perf_counter() - started, 1),
            "threads": torch.get_num_threads(),
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
