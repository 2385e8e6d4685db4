"""int8 ONNX export of the MiniLM intent classifier vs the fp32 PyTorch bundle: latency, agreement, accuracy.

Targets (issue 8): single-input p50 latency >= 3x faster, >= 98% agreement, <= 1 accuracy point lost, measured on
the bundle's validation split by the export's own parity check. Prints JSON.

    python benchmarks/export_bench.py [BUNDLE] [--latency-samples 200] [--torch-int8] [--cores N]

BUNDLE defaults to the newest `banking-intents` bundle under MODELYARD_HOME (`modelyard quickstart --no-serve`
or `modelyard train examples/quickstart.yaml --set train.epochs=1` makes one). The load average is printed: on
a shared CPU both models slow down, PyTorch far more (its threads spin-wait for each other while other
processes hold the cores); `--cores 1` pins the run to one core, a baseline such sharing distorts less.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import onnxruntime
import torch

from modelyard.export.exporter import export
from modelyard.export.runtime import cpu_threads
from modelyard.home import home

TARGETS = {"speedup_p50": 3.0, "agreement": 0.98, "accuracy_drop_points": 1.0}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--torch-int8", action="store_true", help="also PyTorch dynamic int8 (no ONNX)")
    parser.add_argument("--cores", type=int, help="pin to this many cores; both runtimes use one thread per core")
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
    print(
        json.dumps(
            {
                "bundle": str(bundle),
                "targets": TARGETS,
                "results": results,
                "machine": {
                    "cores": cpu_threads(),
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
