"""Multimodal fusion target: on a set where both the image and the text carry part of the signal, late fusion
beats the better single modality on held-out test rows. Prints JSON.

The set ("insect field notes") is built here, deterministically: every photo of ../shared/datasets/hymenoptera_data
(ants vs bees; Flickr photos of unclear licence, so it is read from there and never copied into the repository)
gets a short written note drawn from fixed pools: with probability 0.5 a note typical of its own class ("buzzing
around the lavender"), 0.15 a note typical of the other class (a misleading note), 0.35 a note that says nothing
about the species ("can anyone identify this?") (`--own-share`, `--other-share`). The pools are in NOTES below;
examples/data/raccoon_framing/SOURCE.md describes the construction. Text alone can therefore reach about
0.5 + 0.35 / 2 = 67.5% accuracy; the image alone is the frozen ImageNet features' ~90-95%; the errors of the two
are independent by construction.

Splits: train = hymenoptera `train/` (minus the `imageNotFound.gif` placeholder), of which 15% is carved off
(stratified, seed 42) as validation; test = hymenoptera `val/` (153 photos), never used for any choice. Both
fusion heads (`concat`, `weighted_logits`; `--fusions`) are trained; the one reported as "selected" is the
better on validation macro F1. Repeated for several note draws (`--note-seeds`). Results: docs/multimodal.md.

    nice -n 10 python benchmarks/multimodal_fusion.py [--note-seeds 3] [--data ../shared/datasets/hymenoptera_data]

`--dataset raccoon` builds the same kind of set from photos with a clean licence: the 200 photos of
../shared/datasets/raccoon_detection (MIT), labelled close_up or wide from their own boxes (the rule of
examples/data/raccoon_framing/build.py: the largest box covers at least 45% of the frame), with notes from that
file's pools; train and test are upstream's data/train_labels.csv and data/test_labels.csv (160 / 40 photos).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import modelyard

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "hymenoptera_data"
RACCOON = ROOT.parent / "shared" / "datasets" / "raccoon_detection"
SHARES = {"own": 0.5, "other": 0.15}  # the rest: a neutral note
NOTES = {
    "ants": [
        "a trail of them marching across the kitchen floor",
        "they were carrying crumbs back to the nest",
        "found a colony under a stone in the garden",
        "crawling along the bark, no wings that I could see",
        "a whole line of them going up the wall",
        "they swarmed the sugar bowl overnight",
        "big black ones next to the anthill",
        "farming aphids on the rose stems",
    ],
    "bees": [
        "buzzing around the lavender all afternoon",
        "collecting pollen from the clover",
        "hovering over the sunflowers",
        "came out of the hive by the orchard",
        "fuzzy and striped, drinking nectar",
        "pollen baskets full on its legs",
        "it flew off before I could get closer",
        "working the apple blossoms one by one",
    ],
    "neutral": [
        "small insect I photographed today",
        "what is this?",
        "spotted on a walk this morning",
        "photo from the garden",
        "can anyone identify this?",
        "taken with my phone, sorry for the quality",
        "saw this on holiday",
        "is this dangerous?",
    ],
}
OPENINGS = ["", "Saw this today: ", "Garden log - ", "Quick report: "]
CLOSINGS = ["", " Photo attached.", " (near the pond)", " Any ideas?"]
PLACEHOLDER = "imageNotFound.gif"


def note(label: str, rng: random.Random, shares: dict[str, float], pools: dict[str, list[str]]) -> tuple[str, str]:
    """A note for a photo of `label` and which pool it came from (own, other or neutral)."""
    draw = rng.random()
    other = next(name for name in pools if name not in (label, "neutral"))
    kind = "own" if draw < shares["own"] else "other" if draw < shares["own"] + shares["other"] else "neutral"
    pool = {"own": label, "other": other, "neutral": "neutral"}[kind]
    return rng.choice(OPENINGS) + rng.choice(pools[pool]) + rng.choice(CLOSINGS), kind


def hymenoptera_photos(data: Path) -> dict[str, list[tuple[Path, str]]]:
    """(photo, species) per split: train/ and val/ class folders, without the GIF placeholder."""
    return {
        split: [
            (path, label)
            for label in ("ants", "bees")
            for path in sorted((data / folder / label).iterdir())
            if path.name != PLACEHOLDER and not path.name.startswith(".")
        ]
        for split, folder in (("train", "train"), ("test", "val"))
    }


def raccoon_photos(data: Path) -> dict[str, list[tuple[Path, str]]]:
    """(photo, close_up | wide) per split of upstream's raccoon split, labelled from each photo's own boxes."""
    framing = _raccoon_framing()
    out = {}
    for split, listing in (("train", "train_labels.csv"), ("test", "test_labels.csv")):
        with open(data / "data" / listing, encoding="utf-8") as handle:
            names = sorted({row["filename"] for row in csv.DictReader(handle)})
        out[split] = [
            (data / "images" / n, framing.framing(data / "annotations" / f"{Path(n).stem}.xml")) for n in names
        ]
    return out


def _raccoon_framing():
    """examples/data/raccoon_framing/build.py: its framing rule and note pools."""
    spec = importlib.util.spec_from_file_location("raccoon_framing", ROOT / "examples/data/raccoon_framing/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(data: Path, out: Path, seed: int, shares: dict[str, float], dataset: str) -> dict[str, dict[str, int]]:
    """Write train.csv and test.csv (image path, note, label) under `out`; return the note kinds per split."""
    rng = random.Random(seed)
    photos = raccoon_photos(data) if dataset == "raccoon" else hymenoptera_photos(data)
    pools = _raccoon_framing().NOTES if dataset == "raccoon" else NOTES
    kinds: dict[str, dict[str, int]] = {}
    for split, pairs in photos.items():
        rows = []
        for path, label in pairs:
            text, kind = note(label, rng, shares, pools)
            rows.append({"image": str(path.resolve()), "note": text, "species": label, "kind": kind})
        kinds[split] = {k: sum(r["kind"] == k for r in rows) for k in ("own", "other", "neutral")}
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["image", "note", "species"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return kinds


def config(out: Path, fusion: str) -> dict:
    return {
        "name": f"insect-notes-{fusion}",
        "task": "multimodal_classification",
        "data": {
            "train": str(out / "train.csv"),
            "test": str(out / "test.csv"),
            "split": {"validation": 0.15, "seed": 42, "stratify": True},
            "image_column": "image",
            "text_column": "note",
            "label_column": "species",
        },
        "model": {"fusion": fusion},
    }


def run_once(data: Path, seed: int, fusions: list[str], shares: dict[str, float], dataset: str) -> dict:
    from modelyard.tasks import config_from_dict

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        kinds = build(data, out, seed, shares, dataset)
        runs = {}
        for fusion in fusions:
            started = time.perf_counter()
            model = modelyard.train(config_from_dict(config(out, fusion)), output=out / fusion, quiet=True, track=False)
            metrics = json.loads((model.path / "metrics.json").read_text())
            runs[fusion] = {
                "validation": metrics["validation"]["modalities"],
                "test": metrics["test"]["modalities"],
                "test_rows": metrics["test"]["samples"],
                "tfidf_text_test": metrics["baselines"]["tfidf_logreg_text"]["test"],
                "epochs_run": len((model.path / "history.jsonl").read_text().splitlines()),
                "wall_seconds": round(time.perf_counter() - started, 1),
            }
    chosen = max(runs, key=lambda f: runs[f]["validation"]["fusion"]["macro_f1"])
    test = runs[chosen]["test"]
    best_single = max(test["image_only"]["accuracy"], test["text_only"]["accuracy"])
    return {
        "note_seed": seed,
        "note_kinds": kinds,
        "runs": runs,
        "selected_fusion": chosen,
        "test": test,
        "fusion_minus_best_single_accuracy": round(test["fusion"]["accuracy"] - best_single, 4),
        "pass": test["fusion"]["accuracy"] > best_single
        and test["fusion"]["macro_f1"] > max(test["image_only"]["macro_f1"], test["text_only"]["macro_f1"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["hymenoptera", "raccoon"], default="hymenoptera")
    parser.add_argument("--data", type=Path, default=None, help="default: ../shared/datasets/<the dataset's folder>")
    parser.add_argument("--note-seeds", type=int, default=3, help="how many independent note draws to run")
    parser.add_argument("--first-note-seed", type=int, default=0, help="fresh draws: start the note seeds here")
    parser.add_argument("--own-share", type=float, default=SHARES["own"], help="share of notes typical of the label")
    parser.add_argument("--other-share", type=float, default=SHARES["other"], help="share typical of the other label")
    parser.add_argument("--fusions", default="concat,weighted_logits", help="model.fusion values to train")
    args = parser.parse_args()
    args.data = args.data or (RACCOON if args.dataset == "raccoon" else DATA)
    wanted = args.data / ("data" if args.dataset == "raccoon" else "train")
    if not wanted.is_dir():
        sys.exit(f"{args.data}: no {args.dataset} data here ({wanted.name}/ is missing); pass --data")
    started = time.perf_counter()
    shares = {"own": args.own_share, "other": args.other_share}
    seeds = range(args.first_note_seed, args.first_note_seed + args.note_seeds)
    results = [run_once(args.data, seed, args.fusions.split(","), shares, args.dataset) for seed in seeds]
    summary = {
        head: {
            metric: round(statistics.mean(r["test"][head][metric] for r in results), 4)
            for metric in ("accuracy", "macro_f1")
        }
        for head in ("image_only", "text_only", "fusion")
    }
    report = {
        "benchmark": "multimodal_fusion",
        "dataset": {
            "hymenoptera": "insect field notes (hymenoptera photos + drawn notes; see the docstring)",
            "raccoon": "raccoon framing notes (raccoon_detection photos, MIT, labelled from their boxes + drawn notes)",
        }[args.dataset],
        "note_shares": {**shares, "neutral": round(1 - shares["own"] - shares["other"], 4)},
        "results": results,
        "mean_test_over_note_seeds": summary,
        "pass_all_seeds": all(r["pass"] for r in results),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
