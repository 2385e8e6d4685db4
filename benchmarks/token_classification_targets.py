"""Token-classification targets: entity-level F1 (micro and per type, seqeval) of the fine-tuned encoder against
the most-frequent-tag memorisation baseline, on the test split of public NER sets. Prints JSON.

Sets (full files in ../shared/datasets, slices and SOURCE.md under examples/data/):
- `wnut17`: WNUT-17 emerging entities (English tweets, Reddit, YouTube, StackExchange; CC BY 4.0), the official
  train / dev / test files; `backbone: auto` -> minilm-l6.
- `uner_zh`: Universal NER Chinese GSDSimp (CC BY-SA 4.0), the official train / dev / test files;
  `backbone: auto` -> multilingual-e5-small, tagged per character.
`--train N` / `--validation N` keep the first N sentences of those files (the test file is always whole), for a
shared 2-core machine where the full runs take hours.
Both go through `modelyard.train` as a user runs it (bundle, metrics.json with the baseline beside the model).

    nice -n 10 python benchmarks/token_classification_targets.py [--only wnut17|uner_zh] [--train 1500]
        [--validation 300] [--set train.epochs=2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

import modelyard

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
SETS = {
    "wnut17": {
        "data": {
            "train": str(SHARED / "wnut17" / "wnut17train.conll"),
            "validation": str(SHARED / "wnut17" / "emerging.dev.conll"),
            "test": str(SHARED / "wnut17" / "emerging.test.annotated"),
        },
    },
    "uner_zh": {
        "data": {
            "train": str(SHARED / "uner_zh_gsdsimp" / "zh_gsdsimp-ud-train.iob2"),
            "validation": str(SHARED / "uner_zh_gsdsimp" / "zh_gsdsimp-ud-dev.iob2"),
            "test": str(SHARED / "uner_zh_gsdsimp" / "zh_gsdsimp-ud-test.iob2"),
            "token_column": 1,
            "tag_column": 2,
        },
    },
}


# Where the full files come from (not in the repository: each SOURCE.md lists the files and their git blobs)
SOURCES = {
    "wnut17": "github.com/leondz/emerging_entities_17 at e52a2d2 (examples/data/wnut17/SOURCE.md)",
    "uner_zh": "github.com/UniversalNER/UNER_Chinese-GSDSIMP at 1f03075 (examples/data/uner_zh_gsdsimp/SOURCE.md)",
}


def missing_files(name: str) -> list[str]:
    """The full files of set `name` that are not on this machine."""
    return [path for path in SETS[name]["data"].values() if isinstance(path, str) and not Path(path).is_file()]


def first_sentences(source: str, count: int, target: Path) -> str:
    """The first `count` sentences of a CoNLL file (blocks between whitespace-only lines), written to `target`."""
    blocks, block = [], []
    for line in Path(source).read_text(encoding="utf-8").splitlines():
        if line.strip():
            block.append(line)
        elif block:
            blocks.append("\n".join(block))
            block = []
    if block:
        blocks.append("\n".join(block))
    target.write_text("\n\n".join(blocks[:count]) + "\n", encoding="utf-8")
    return str(target)


def headline(metrics: dict) -> dict:
    keep = ("entity_f1", "entity_precision", "entity_recall", "macro_f1", "token_accuracy")
    return {
        **{k: metrics.get(k) for k in keep},
        "f1_per_type": {t: r["f1"] for t, r in metrics.get("per_type", {}).items()},
        "support_per_type": {t: r["support"] for t, r in metrics.get("per_type", {}).items() if "support" in r},
    }


def run(name: str, overrides: list[str], limits: dict[str, int | None]) -> dict:
    spec = json.loads(json.dumps(SETS[name]))
    missing = [p for k, p in spec["data"].items() if isinstance(p, str) and not Path(p).is_file()]
    if missing:
        return {"skipped": f"missing {missing}"}
    with tempfile.TemporaryDirectory() as tmp:
        for split, count in limits.items():
            if count:
                spec["data"][split] = first_sentences(spec["data"][split], count, Path(tmp) / f"{split}.conll")
        config = {
            "name": f"bench-{name}",
            "task": "token_classification",
            "data": spec["data"],
            "model": {"backbone": "auto"},
            "train": {"early_stopping": {"patience": 2, "metric": "entity_f1"}},
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        started = time.perf_counter()
        model = modelyard.train(path, output=Path(tmp) / "bundle", overrides=overrides, quiet=True, track=False)
        metrics = json.loads((model.path / "metrics.json").read_text())
        report = json.loads((model.path / "data_report.json").read_text())
        sample = "Ada Lovelace met Charles Babbage in London." if name == "wnut17" else "李白在长安见到了杜甫。"
        answer = model.predict([sample])[0]
        model_f1 = metrics["test"]["entity_f1"]
        base_f1 = metrics["baselines"]["most_frequent_tag"]["test"]["entity_f1"]
        return {
            "backbone": model.manifest["backbone"],
            "splits": report["splits"],
            "test_entities": report["entity_types"]["test"],
            "train": {k: metrics["train"].get(k) for k in ("seconds", "samples_per_second", "steps", "precision")},
            "epochs": model.config.train.epochs,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "model_test": headline(metrics["test"]),
            "model_validation": headline(metrics["validation"]),
            "baseline_most_frequent_tag_test": headline(metrics["baselines"]["most_frequent_tag"]["test"]),
            "model_beats_baseline": model_f1 > base_f1,
            "example": {"text": sample, **answer},
        }


def load_late_imports() -> None:
    """Import now what `train` imports only when it writes the bundle: several people edit this tree at once, and a
    module broken for a minute near the end of an hour-long run would lose the run."""
    for name in ("modelyard.evaluation.model_card", "modelyard.drift.reference", "modelyard.metrics.intervals"):
        importlib.import_module(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETS))
    parser.add_argument("--train", type=int, default=None, help="use the first N training sentences only")
    parser.add_argument("--validation", type=int, default=None, help="the first N validation sentences only")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    args = parser.parse_args()
    names = [args.only] if args.only else list(SETS)
    for name in names:
        if missing := missing_files(name):
            sys.exit(f"{missing[0]}: not on this machine; copy the full files there from {SOURCES[name]}")
    load_late_imports()
    results = {}
    for name in names:
        results[name] = run(name, args.overrides, {"train": args.train, "validation": args.validation})
        print(json.dumps({name: results[name]}, ensure_ascii=False), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
