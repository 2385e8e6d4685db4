"""The text-classification targets of issue 2, one training run each; prints JSON with test metrics and times.

Usage: python benchmarks/text_targets.py [quickstart] [sst2] [waimai]   (sst2 and waimai need ../shared)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import modelyard

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = {"quickstart": "quickstart.yaml", "sst2": "sst2_sentiment.yaml", "waimai": "waimai_sentiment.yaml"}


def run(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model = modelyard.train(EXAMPLES / CONFIGS[name], output=Path(tmp) / "bundle", quiet=True)
        metrics = json.loads((model.path / "metrics.json").read_text())
    headline = ("accuracy", "macro_f1")
    return {
        "backbone": model.manifest["backbone"],
        "validation": {k: round(metrics["validation"][k], 4) for k in headline},
        "test": {k: round(metrics["test"][k], 4) for k in headline},
        "baselines": {n: {k: round(b["test"][k], 4) for k in headline} for n, b in metrics["baselines"].items()},
        "candidates": metrics.get("candidates"),
        "train": metrics["train"],
    }


if __name__ == "__main__":
    names = sys.argv[1:] or list(CONFIGS)
    print(json.dumps({name: run(name) for name in names}, indent=2))
