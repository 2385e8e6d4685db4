"""int8 ONNX export of the MiniLM intent classifier vs the fp32 PyTorch bundle: latency, agreement, accuracy,
and serving throughput.

Targets (issue 8): single-input p50 latency >= 3x faster, >= 98% agreement, <= 1 accuracy point lost, measured on
the bundle's validation split by the export's own parity check; with `--serve`, the exported bundle behind
`modelyard serve` answers >= 2x the requests per second of the original under the same load (serve_bench's
clients: N concurrent single-text requests for a fixed time against each server, one after the other, both
started with the same settings, in the order original, exported, exported, original). Prints JSON.

    python benchmarks/export_bench.py [BUNDLE] [--latency-samples 200] [--torch-int8] [--cores N]
                                      [--serve [--clients 32] [--duration 15] [--max-batch-size 32]]

BUNDLE defaults to the newest `banking-intents` bundle under MODELYARD_HOME (`modelyard quickstart --no-serve`
or `modelyard train examples/quickstart.yaml --set train.epochs=1` makes one). The load average is printed: on
a shared CPU both models slow down, PyTorch far more (its threads spin-wait for each other while other
processes hold the cores); `--cores 1` pins the run to one core, a baseline such sharing distorts less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import onnxruntime
import torch
from serve_bench import run_one, texts

from modelyard.cores import usable_cores
from modelyard.export.exporter import export
from modelyard.home import home

TARGETS = {"speedup_p50": 3.0, "agreement": 0.98, "accuracy_drop_points": 1.0, "serving_throughput_ratio": 2.0}


def newest_bundle(name: str = "banking-intents") -> Path:
    runs = sorted(p.parent for p in (home() / "bundles" / name).glob("*/modelyard.json"))
    if not runs:
        sys.exit(f"no {name} bundle under {home() / 'bundles'}; train one (see this script's docstring)")
    return runs[-1]


def summary(report: dict) -> dict:
    lat, acc = report["latency_ms"], report["accuracy"]
    speedup = lat["original"]["p50"] / lat["exported"]["p50"]
    drop = 100 * (acc["original"] - acc["exported"])
    return {
        "quantize": report["quantize"],
        "size_mb": report["size_mb"],
        "latency_ms": {k: lat[k] for k in ("original", "exported")},
        "speedup_p50": round(speedup, 2),
        "throughput_samples_per_s": {k: report["throughput"][k] for k in ("original", "exported")},
        "throughput_ratio": round(report["throughput"]["exported"] / report["throughput"]["original"], 2),
        "agreement": report["parity"]["agreement"],
        "max_abs_diff": round(report["parity"]["max_abs_diff"], 5),
        "accuracy": acc,
        "accuracy_drop_points": round(drop, 2),
        "validation_samples": report["parity"]["samples"],
        "meets_targets": speedup >= TARGETS["speedup_p50"]
        and report["parity"]["agreement"] >= TARGETS["agreement"]
        and drop <= TARGETS["accuracy_drop_points"],
    }


def serving(original: Path, exported: Path, args: argparse.Namespace) -> dict:
    """Both bundles behind `modelyard serve` with the same settings under the same load, in the order original,
    exported, exported, original (ABBA: a load that drifts steadily during the run favours neither)."""
    pool = texts()
    paths = {"original": original, "exported": exported}
    runs: dict[str, list[dict]] = {"original": [], "exported": []}
    for name in ("original", "exported", "exported", "original")[: 4 if args.abba else 2]:
        runs[name].append(asyncio.run(run_one(str(paths[name]), args.max_batch_size, args, pool)))
    rps = {name: sum(r["throughput_rps"] for r in done) / len(done) for name, done in runs.items()}
    ratio = rps["exported"] / max(rps["original"], 1e-9)
    return {
        "clients": args.clients,
        "duration_s": args.duration,
        "throughput_rps": {name: round(value, 1) for name, value in rps.items()},
        "throughput_ratio": round(ratio, 2),
        "meets_target": ratio >= TARGETS["serving_throughput_ratio"],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--torch-int8", action="store_true", help="also PyTorch dynamic int8 (no ONNX)")
    parser.add_argument("--cores", type=int, help="pin to this many cores; both runtimes use one thread per core")
    parser.add_argument("--serve", action="store_true", help="also compare serving throughput (serve_bench load)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--no-abba", dest="abba", action="store_false", help="serve each bundle once, not twice")
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="passed on to `modelyard serve` (repeatable), e.g. --serve-option=--threads=1",
    )
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
        torch.set_num_threads(args.cores)
    warnings.filterwarnings("ignore")
    bundle = args.bundle or newest_bundle()
    load_before = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("onnx_int8", "onnx")] + ([("torch_int8", "torch")] if args.torch_int8 else [])
        for name, fmt in runs:
            result = export(bundle, fmt, "int8", Path(tmp) / name, force=True, latency_samples=args.latency_samples)
            results[name] = summary(result.report)
            if args.serve and name == "onnx_int8":
                results[name]["serving"] = serving(bundle, result.path, args)
    print(
        json.dumps(
            {
                "bundle": str(bundle),
                "targets": TARGETS,
                "results": results,
                "machine": {
                    "cores": usable_cores(),
                    "torch_threads": torch.get_num_threads(),
                    "onnxruntime": onnxruntime.__version__,
                    "torch": torch.__version__,
                    "load_average_before": round(load_before, 2),
                    "load_average_after": round(os.getloadavg()[0], 2),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
