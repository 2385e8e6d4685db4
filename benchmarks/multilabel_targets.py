"""Multi-label target on the GoEmotions slice (examples/goemotions.yaml: 2,800 training, 500 validation and 1,000
test Reddit comments, 28 labels): micro/macro F1 and subset accuracy of the fine-tuned encoder against TF-IDF +
one-vs-rest logistic regression, both with per-label thresholds tuned on the same validation split, both scored
on the same test split. Prints JSON.

`modelyard.train` as a user runs it (bundle, baseline in metrics.json); `--set` overrides config keys, e.g. to
fit the shared 2-core machine's time budget. Run one at a time: the CPU is shared.

    nice -n 10 python benchmarks/multilabel_targets.py [--set train.epochs=3] [--set model.max_length=64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import modelyard

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "goemotions.yaml"
HEADLINE = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "micro_precision", "micro_recall")


def run(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = modelyard.train(CONFIG, output=Path(tmp) / "b", overrides=overrides, quiet=True, track=False)
        seconds = time.perf_counter() - started
        metrics = json.loads((model.path / "metrics.json").read_text())
        decision = json.loads((model.path / "thresholds.json").read_text())
        evaluations = len((model.path / "history.jsonl").read_text().splitlines())
        answer = model.predict(["Thank you so much, this made my day!"])[0]
    thresholds = list(decision["thresholds"].values())
    test, baseline = metrics["test"], metrics["baselines"]["tfidf_logreg"]["test"]
    return {
        "dataset": "GoEmotions slice (examples/data/goemotions), test split",
        "test_rows": test["samples"],
        "labels": len(decision["thresholds"]),
        "model": {"backbone": model.manifest["backbone"], **{k: round(test[k], 4) for k in HEADLINE}},
        "tfidf_ovr_logreg": {k: round(baseline[k], 4) for k in HEADLINE},
        "model_minus_baseline": {
            k: round(test[k] - baseline[k], 4) for k in ("micro_f1", "macro_f1", "subset_accuracy")
        },
        "thresholds": {"tuning": decision["tuning"], "range": [min(thresholds), max(thresholds)]},
        "example": {"input": "Thank you so much, this made my day!", "labels": answer["labels"]},
        "train": {**metrics["train"], "evaluations": evaluations},
        "overrides": overrides,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args()
    print(json.dumps(run(args.overrides), indent=2))


if __name__ == "__main__":
    main()
