"""The label-noise targets of issue 28: flip 5% of BANKING77's training labels (seeded), then

- `audit`: the share of flipped rows among the audit's top 10% ranked rows (target >= 0.80), and its cost;
- `clean`, `noisy`, `drop`: test accuracy of the quickstart's MiniLM fine-tune (examples/quickstart.yaml) on the clean
  labels, on the noisy labels, and on the noisy labels with `data.label_noise.action: drop` (target: drop wins back
  at least half of what the noise cost).

Usage: python benchmarks/label_noise_targets.py [audit] [clean] [noisy] [drop] [--results FILE] [--set KEY=VALUE]
Each stage's result is merged into `--results` (JSON) as soon as it finishes, so the three fine-tunes (about 6 min
each on an idle 2-core CPU) can run in separate processes; the script prints the merged JSON and the target checks.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import modelyard
from modelyard.tasks import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIG = EXAMPLES / "quickstart.yaml"
DATA = EXAMPLES / "data" / "banking77"
NOISE, SEED, TOP = 0.05, 0, 0.10
STAGES = ("audit", "clean", "noisy", "drop")


def flip_labels(frame: pd.DataFrame, column: str, share: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """`share` of the rows get a different label drawn uniformly from the other classes; returns the flipped rows."""
    rng = np.random.default_rng(seed)
    labels = sorted(frame[column].unique())
    flipped = np.sort(rng.choice(len(frame), size=round(share * len(frame)), replace=False))
    noisy = frame.copy()
    for row in flipped:
        others = [label for label in labels if label != frame[column].iat[row]]
        noisy.iat[row, noisy.columns.get_loc(column)] = others[rng.integers(len(others))]
    return noisy, flipped


def write_noisy(folder: Path) -> tuple[Path, np.ndarray]:
    clean = pd.read_csv(DATA / "train.csv")
    noisy, flipped = flip_labels(clean, "category", NOISE, SEED)
    path = folder / "train_noisy.csv"
    noisy.to_csv(path, index=False)
    return path, flipped


def audit(noisy: Path, flipped: np.ndarray, overrides: list[str]) -> dict:
    """Rank every row of the noisy file through the task's own audit (no rows carved off: all are training rows)."""
    from modelyard.data.readers import read_table
    from modelyard.tasks import get_task

    config = load_config(CONFIG, [f"data.train={noisy}", "data.split.validation=0", *overrides])
    task = get_task(config.task)
    data = task.prepare(config)
    result = task.audit_labels(config, data)
    lines = data.splits["train"].index.to_numpy()  # the line each kept row starts on (quoted texts span lines)
    flipped_lines = read_table(str(noisy), config.data.format, None)[0].index.to_numpy()[flipped]
    ranked = lines[result.audit.ranked]
    top = ranked[: round(TOP * len(ranked))]
    suspects = set(lines[result.audit.suspects].tolist())
    hits = len(suspects & set(flipped_lines.tolist()))
    return {
        "method": result.method,
        "rows": len(lines),
        "flipped_in_audit": int(np.isin(flipped_lines, lines).sum()),
        "flipped_found_in_top_10pct": round(float(np.isin(flipped_lines, top).mean()), 4),
        "suspects": len(suspects),
        "suspect_precision": round(hits / max(len(suspects), 1), 4),
        "suspect_recall": round(hits / len(flipped), 4),
        "estimated_noise_rate": round(result.audit.noise_rate, 4),
        "seconds": round(result.seconds, 1),
    }


def fine_tune(train: Path, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model = modelyard.train(CONFIG, Path(tmp) / "bundle", [f"data.train={train}", *overrides], quiet=True)
        metrics = json.loads((model.path / "metrics.json").read_text())
    return {
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "test_macro_f1": round(metrics["test"]["macro_f1"], 4),
        "validation_accuracy": round(metrics["validation"]["accuracy"], 4),
        "label_noise": metrics.get("label_noise"),
        "train_seconds": metrics["train"]["wall_seconds"],
    }


def checks(results: dict) -> dict:
    out = {}
    if "audit" in results:
        out["audit_top10_at_least_0.80"] = results["audit"]["flipped_found_in_top_10pct"] >= 0.80
    if all(s in results for s in ("clean", "noisy", "drop")):
        clean, noisy, drop = (results[s]["test_accuracy"] for s in ("clean", "noisy", "drop"))
        cost = clean - noisy
        out["noise_cost"] = round(cost, 4)
        out["recovered"] = round(drop - noisy, 4)
        out["recovered_share"] = round((drop - noisy) / cost, 3) if cost > 0 else None
        out["drop_recovers_half"] = cost <= 0 or (drop - noisy) >= cost / 2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help=f"stages to run: {', '.join(STAGES)} (default: all)")
    parser.add_argument("--results", type=Path, help="JSON file the stages' results are merged into")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage {unknown[0]!r}: choose from {', '.join(STAGES)}")
    results = json.loads(args.results.read_text()) if args.results and args.results.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        noisy, flipped = write_noisy(Path(tmp))
        results["setup"] = {"noise": NOISE, "seed": SEED, "rows": len(pd.read_csv(noisy)), "flipped": len(flipped)}
        for stage in args.stages or STAGES:
            if stage == "audit":
                results[stage] = audit(noisy, flipped, args.overrides)
            elif stage == "clean":
                results[stage] = fine_tune(DATA / "train.csv", args.overrides)
            elif stage == "noisy":
                results[stage] = fine_tune(noisy, args.overrides)
            else:
                results[stage] = fine_tune(noisy, ["data.label_noise.action=drop", *args.overrides])
            if args.results:
                args.results.write_text(json.dumps(results, indent=2))
    results["checks"] = checks(results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
