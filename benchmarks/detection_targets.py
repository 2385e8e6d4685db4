"""Object-detection targets (issue 26, item 1): mAP@0.5 and mAP@0.5:0.95 on the raccoon test split of CenterNet
on the bundled ImageNet EfficientNet-Lite0 trunk against the same detector with a random trunk, training time,
and single-image latency of the PyTorch bundle and its int8 ONNX export (with the export's mAP parity check).
Prints JSON.

    python benchmarks/detection_targets.py                                   # ../shared/datasets/raccoon_detection
    python benchmarks/detection_targets.py --data examples/data/raccoon_mini --epochs 1 --image-size 128   # smoke

DATA holds annotations/ (Pascal VOC) and images/; the split is upstream's data/train_labels.csv and
data/test_labels.csv when present (else train.txt / test.txt). Validation is carved from train (10%, seed 42).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "object_detection.yaml"


def split_files(data: Path) -> tuple[Path, Path]:
    upstream = data / "data" / "train_labels.csv", data / "data" / "test_labels.csv"
    return upstream if upstream[0].is_file() else (data / "train.txt", data / "test.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "raccoon_detection")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--trunks", default="imagenet,random")
    parser.add_argument("--latency-samples", type=int, default=30)
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="detection-bench-"))
    os.environ.setdefault("MODELYARD_HOME", str(work / "home"))
    from modelyard import api
    from modelyard.export.exporter import export

    train, test = split_files(args.data.resolve())
    common = [
        f"data.annotations={args.data.resolve()}",
        f"data.train={train}",
        f"data.test={test}",
        f"model.image_size={args.image_size}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
    ]
    result: dict = {
        "data": str(args.data),
        "device": "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "load_average_start": os.getloadavg(),
        "settings": {"epochs": args.epochs, "image_size": args.image_size, "batch_size": args.batch_size},
        "runs": {},
    }
    bundles = {}
    for trunk in args.trunks.split(","):
        began = time.perf_counter()
        model = api.train(CONFIG, work / trunk, [*common, f"model.trunk={trunk}"], quiet=True, track=False)
        metrics = json.loads((model.path / "metrics.json").read_text(encoding="utf-8"))
        bundles[trunk] = model.path
        result["runs"][trunk] = {
            "test_map50": metrics["test"]["map50"],
            "test_map50_95": metrics["test"]["map50_95"],
            "validation_map50": metrics["validation"].get("map50"),
            "train_seconds": round(metrics["train"]["seconds"], 1),
            "wall_seconds": round(time.perf_counter() - began, 1),
            "epochs_run": sum(1 for _ in (model.path / "history.jsonl").open()),
        }
        print(json.dumps({trunk: result["runs"][trunk]}), file=sys.stderr, flush=True)
    if "imagenet" in bundles:
        os.environ["MODELYARD_DEVICE"] = "cpu"  # latency of both runtimes on the CPU, as a CPU deployment sees it
        exported = export(
            bundles["imagenet"], "onnx", "int8", work / "onnx-int8", force=True, latency_samples=args.latency_samples
        )
        report = exported.report
        onnx_test = api.load(exported.path).evaluate()
        result["onnx_int8"] = {
            "parity_passed": exported.passed,
            "validation_parity": report["parity"],
            "validation_map50": report["accuracy"],
            "test_map50": onnx_test["map50"],
            "test_map50_95": onnx_test["map50_95"],
            "latency_ms_single_image": report["latency_ms"],
            "size_mb": report["size_mb"],
        }
    result["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
