"""Choose the pretrained text backbones' default epochs and learning rates on VALIDATION, then measure test once.

Issue 21 item 5: the tuned defaults had been picked on test accuracy. This sweep trains every point of a small grid
per backbone (`modelyard.train`, the user's path, tracking off), reads only validation accuracy to choose, and only
then reports the chosen setting's test accuracy (over several split seeds where the config carves its own test
set). It also runs the item-15 comparisons on Chinese hotel reviews (a set no default was tuned on): the settings a
user writes (4 epochs, LR 5e-5) against the recipe, and the recipe with a linear-probe head and with continued
masked-LM pretraining, each over several split seeds.

Runs go to a process pool (`--workers`): on a GPU several small models train at once. Each finished run is one JSON
line in `--output` as soon as it ends (a cut-short sweep keeps what finished); `--summary` gets the choice tables.

    python benchmarks/text_defaults_sweep.py --prepare DATA --shared ../shared/datasets     # build the data folder
    python benchmarks/text_defaults_sweep.py --data DATA --workers 8 --output runs.jsonl --summary summary.json
    python benchmarks/text_defaults_sweep.py --data DATA --grid tiny --rows 200 ...          # plumbing check on a CPU
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOTELS = "酒店"  # online_shopping_10_cats' hotel category: the reviewer's held-out Chinese set


def prepare(shared: Path, out: Path, rows: int | None, hotel_rows: int | None = None) -> None:
    """The sweep's data folder: BANKING77 (in the repo), SST-2 and waimai (copied), hotel reviews cut out of
    online_shopping_10_cats, and the other nine categories' review texts, unlabelled, for masked-LM pretraining.
    `rows` keeps the first rows of each file (a CPU plumbing check); `hotel_rows` a seeded random sample of the
    hotel reviews, half of each label (the CPU-sized masked-LM comparison)."""
    out.mkdir(parents=True, exist_ok=True)

    def copy(source: Path, name: str, delimiter: str = ",") -> None:
        with source.open(encoding="utf-8", newline="") as f:
            table = list(csv.reader(f, delimiter=delimiter))
        keep = table if rows is None else [table[0], *table[1 : rows // 2 + 1], *table[-rows // 2 :]]
        with (out / name).open("w", encoding="utf-8", newline="") as f:
            csv.writer(f, delimiter=delimiter).writerows(keep)

    copy(ROOT / "examples/data/banking77/train.csv", "banking_train.csv")
    copy(ROOT / "examples/data/banking77/test.csv", "banking_test.csv")
    copy(shared / "sst2/train.tsv", "sst2_train.tsv", "\t")
    copy(shared / "sst2/dev.tsv", "sst2_dev.tsv", "\t")
    copy(shared / "waimai_10k/waimai_10k.csv", "waimai.csv")
    hotels, others = [], []
    for part in sorted((shared / "online_shopping_10_cats").glob("*.csv")):
        with part.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                review = (row["review"] or "").strip().lstrip("\ufeff")
                if review:
                    (hotels if row["cat"] == HOTELS else others).append((row["label"], review))
    if rows is not None:
        hotels, others = hotels[: rows // 2] + hotels[-rows // 2 :], others[:rows]
    if hotel_rows is not None:
        rng = random.Random(0)
        hotels = [r for label in ("0", "1") for r in rng.sample([h for h in hotels if h[0] == label], hotel_rows // 2)]
    with (out / "hotels.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("label", "review"), *hotels])
    (out / "reviews_unlabelled.txt").write_text("\n".join(r.replace("\n", " ") for _, r in others) + "\n", "utf-8")
    print(json.dumps({"prepared": str(out), "hotels": len(hotels), "unlabelled_reviews": len(others)}))


def datasets(data: Path) -> dict[str, list[str]]:
    """Overrides that point a text_classification config at each prepared file."""

    def given_test(train: str, test: str, validation: float, text: str, label: str) -> list[str]:
        return [
            f"data.train={data / train}",
            f"data.test={data / test}",
            f"data.split.validation={validation}",
            "data.split.seed=42",
            f"data.text_column={text}",
            f"data.label_column={label}",
        ]

    def carved_test(train: str) -> list[str]:  # 80/10/10 stratified, one split per seed
        return [
            f"data.train={data / train}",
            "data.test=null",
            "data.split.validation=0.1",
            "data.split.test=0.1",
            "data.text_column=review",
            "data.label_column=label",
        ]

    return {
        "banking77": given_test("banking_train.csv", "banking_test.csv", 0.1, "text", "category"),
        "sst2": given_test("sst2_train.tsv", "sst2_dev.tsv", 0.02, "sentence", "label"),
        "waimai": carved_test("waimai.csv"),
        "hotels": carved_test("hotels.csv"),
    }


def grid(name: str, data: Path, mlm: list[str], mlm_seeds: list[int]) -> list[dict[str, Any]]:
    """Every run of the sweep: (group, setting, split seed) -> overrides. `tiny` is one short run per group; `mlm`
    the recipe with and without continued pretraining (`mlm`: the overrides that turn it on) on `mlm_seeds`."""
    sets = datasets(data)
    jobs: list[dict[str, Any]] = []

    def add(group: str, dataset: str, setting: dict[str, Any], extra: list[str], seeds: list[int | None]) -> None:
        for seed in seeds:
            seed_override = [] if seed is None else [f"data.split.seed={seed}"]
            jobs.append(
                {
                    "group": group,
                    "dataset": dataset,
                    "setting": setting,
                    "seed": seed,
                    "overrides": [*sets[dataset], *extra, *seed_override],
                }
            )

    def lr_epochs(lrs: list[float], epochs: list[int]) -> list[tuple[dict[str, Any], list[str]]]:
        return [
            ({"learning_rate": lr, "epochs": ep}, [f"train.learning_rate={lr}", f"train.epochs={ep}"])
            for lr, ep in itertools.product(lrs, epochs)
        ]

    minilm, e5 = ["model.backbone=minilm-l6"], ["model.backbone=multilingual-e5-small"]
    if name == "tiny":
        one = lr_epochs([1e-4], [1])
        add("minilm/banking77", "banking77", one[0][0], minilm + one[0][1], [None])
        add("e5/waimai", "waimai", one[0][0], e5 + one[0][1], [0])
        add("item15/hotels", "hotels", {"variant": "recipe"}, [*e5, "train.epochs=1"], [0])
        if mlm:
            add("item15/hotels", "hotels", {"variant": "mlm"}, [*e5, "train.epochs=1", *mlm], [0])
        return jobs
    if name == "mlm":  # the recipe with and without continued pretraining, on the hotel splits the full grid used
        add("item15/hotels_mlm", "hotels", {"variant": "recipe"}, e5, mlm_seeds)
        add("item15/hotels_mlm", "hotels", {"variant": "recipe_mlm"}, e5 + mlm, mlm_seeds)
        return jobs
    # One setting at a time around the current default (validation decides), seeds where the test set is carved.
    for setting, extra in [*lr_epochs([2e-5, 1e-4], [3]), *lr_epochs([5e-5], [2, 3, 4])]:
        add("e5/waimai", "waimai", setting, e5 + extra, [0, 1])
    for setting, extra in [*lr_epochs([5e-5, 2e-4], [8]), *lr_epochs([1e-4], [5, 8, 12])]:
        add("minilm/banking77", "banking77", setting, minilm + extra, [None])
    for setting, extra in lr_epochs([1e-4], [4, 3, 2]):  # the SST-2 example's own epochs
        add("minilm/sst2", "sst2", setting, minilm + extra, [None])
    hotel_variants = {
        "user_4ep_5e-5": ["train.epochs=4", "train.learning_rate=5e-5", "train.batch_size=32"],
        "recipe": [],
        "recipe_linear_probe_head": ["model.head_init=linear_probe"],
        **({"recipe_mlm": mlm} if mlm else {}),
    }
    for variant, extra in hotel_variants.items():
        add("item15/hotels", "hotels", {"variant": variant}, e5 + extra, [0, 1, 2])
    return jobs


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One `modelyard.train` run in a fresh process: validation (final and per epoch) and test accuracy."""
    import modelyard

    started = time.perf_counter()
    config = ROOT / "examples/quickstart.yaml"  # text_classification; every data key is overridden
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODELYARD_HOME"] = str(Path(tmp) / "home")
        try:
            model = modelyard.train(config, Path(tmp) / "bundle", job["overrides"], quiet=True, track=False)
        except Exception as error:  # one failed grid point is reported, the sweep goes on
            return {**job, "error": f"{type(error).__name__}: {error}"}
        metrics = json.loads((model.path / "metrics.json").read_text(encoding="utf-8"))
        history = [json.loads(line) for line in (model.path / "history.jsonl").read_text().splitlines() if line]
    return {
        **job,
        "validation_accuracy": metrics["validation"]["accuracy"],
        "test_accuracy": metrics["test"]["accuracy"],
        "baselines_test_accuracy": {n: b["test"]["accuracy"] for n, b in metrics.get("baselines", {}).items()},
        "validation_curve": [round(h["validation"].get("accuracy", float("nan")), 4) for h in history],
        "train": metrics["train"],
        "extra": {k: metrics[k] for k in ("domain_pretraining",) if k in metrics},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per group: mean validation accuracy per setting over its seeds, the setting validation chooses, and only
    then that setting's test accuracy (mean over seeds) beside the other settings' for reference."""
    by_group: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if "error" not in r:
            by_group[r["group"]][json.dumps(r["setting"], sort_keys=True)].append(r)
    summary: dict[str, Any] = {}
    for group, settings in by_group.items():
        table = {
            key: {
                "runs": len(rs),
                "validation_mean": round(statistics.fmean(r["validation_accuracy"] for r in rs), 4),
                "test_mean": round(statistics.fmean(r["test_accuracy"] for r in rs), 4),
                "test_sd": round(statistics.stdev([r["test_accuracy"] for r in rs]), 4) if len(rs) > 1 else None,
                "tfidf_test_mean": _baseline_mean(rs),
            }
            for key, rs in settings.items()
        }
        chosen = max(table, key=lambda k: table[k]["validation_mean"])
        summary[group] = {"chosen_on_validation": json.loads(chosen), "chosen": table[chosen], "table": table}
    summary["errors"] = [
        {"group": r["group"], "setting": r["setting"], "error": r["error"]} for r in results if "error" in r
    ]
    return summary


def _baseline_mean(runs: list[dict[str, Any]]) -> float | None:
    values = [v for r in runs for n, v in r["baselines_test_accuracy"].items() if "tfidf" in n]
    return round(statistics.fmean(values), 4) if values else None


def confirm_jobs(group: str, results: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """The chosen setting of a finished split-seed group, on more split seeds (the README's 10-seed mean)."""
    chosen = summarise([r for r in results if r["group"] == group])[group]["chosen_on_validation"]
    template = next(r for r in results if r["group"] == group and r["setting"] == chosen)
    base = [o for o in template["overrides"] if not o.startswith("data.split.seed=")]
    return [
        {
            "group": f"{group}/chosen_10_seeds",
            "dataset": template["dataset"],
            "setting": chosen,
            "seed": s,
            "overrides": [*base, f"data.split.seed={s}"],
        }
        for s in seeds
    ]


def sweep(jobs: list[dict[str, Any]], workers: int, output: Path, confirm: dict[str, list[int]]) -> list[dict]:
    """Run `jobs` `workers` at a time, appending each result to `output`; when a group named in `confirm` has
    finished, its validation-chosen setting runs again on those split seeds."""
    results: list[dict[str, Any]] = []
    pending = {g: sum(j["group"] == g for j in jobs) for g in confirm}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool, output.open("a") as log:
        running: set[Future] = {pool.submit(run_job, j) for j in jobs}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                results.append(result)
                log.write(json.dumps(result, ensure_ascii=False) + "\n")
                log.flush()
                group = result["group"]
                if group in pending:
                    pending[group] -= 1
                    if pending[group] == 0:
                        earlier = {r["seed"] for r in results if r["group"] == group}
                        more = confirm_jobs(group, results, [s for s in confirm[group] if s not in earlier])
                        running |= {pool.submit(run_job, j) for j in more}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="build the data folder here and stop")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared/datasets")
    parser.add_argument("--rows", type=int, help="with --prepare: keep the first rows of each file")
    parser.add_argument("--hotel-rows", type=int, help="with --prepare: a random sample of the hotel reviews")
    parser.add_argument("--data", type=Path, help="a folder made by --prepare")
    parser.add_argument("--grid", choices=("full", "mlm", "tiny"), default="full")
    parser.add_argument("--mlm", nargs="*", default=[], help="overrides that turn continued masked-LM pretraining on")
    parser.add_argument("--mlm-seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds of --grid mlm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("text_defaults_sweep.jsonl"))
    parser.add_argument("--summary", type=Path, default=Path("text_defaults_sweep_summary.json"))
    args = parser.parse_args()
    if args.prepare:
        prepare(args.shared, args.prepare, args.rows, args.hotel_rows)
        return
    if args.data is None:
        parser.error("--data DIR (made by --prepare) is required")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Every run shares one converted copy of each bundled model, made here before the workers start.
    os.environ.setdefault("MODELYARD_CACHE", str(Path(tempfile.gettempdir()) / "modelyard_sweep_cache"))
    from modelyard.models.catalog import locate

    jobs = grid(args.grid, args.data.resolve(), args.mlm, args.mlm_seeds)
    for backbone in {o.removeprefix("model.backbone=") for j in jobs for o in j["overrides"] if "backbone=" in o}:
        locate(backbone)
    confirm = {"e5/waimai": list(range(10))} if args.grid == "full" else {}
    results = sweep(jobs, args.workers, args.output, confirm)
    summary = summarise(results)
    args.summary.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
