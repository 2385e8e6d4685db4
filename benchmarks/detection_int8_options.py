"""int8 ONNX options for the detector (issue 26, item 1): for a trained detection bundle, each quantization
option's agreement with PyTorch (share of images whose confident boxes match one to one: strictly, margin 0, and
with the export gate's score margin, `DetectorLearner.score_margin`), score changes of matched boxes, mAP@0.5 on
validation and test, single-image latency p50 (PyTorch, fp32 ONNX and each option, one probe through every
runtime in turn so all see the same load) and size; and, for every image that disagrees, the boxes behind it:
each confident box of one model with its best same-class counterpart in the other (score, IoU), so threshold
jitter (counterpart just under min_score) can be told from a moved, missing or extra box.
Prints JSON.

    python benchmarks/detection_int8_options.py RUN/BUNDLE [--options a,b] [--output result.json]

Agreement is measured on validation, test and the training images not used for calibration (the gate itself sees
only validation: 16 images on raccoon, where one image is 6.25 points).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

HEADS = ("/smooth/", "/heatmap/", "/box/")
NECK = ("/lateral.", "/Resize", "/Add")
STEM = ("/conv_stem/",)


def static(method: str = "minmax", fp32: tuple[str, ...] = HEADS, **extra: Any) -> dict[str, Any]:
    return {"scheme": "static", "method": method, "fp32": fp32, **extra}


OPTIONS: dict[str, dict[str, Any]] = {
    "static_minmax_heads_fp32": static(),  # what `modelyard export --quantize int8` does (FP32_NODES)
    "static_minmax_all_int8": static(fp32=()),
    "static_minmax_neck_heads_fp32": static(fp32=HEADS + NECK),
    "static_minmax_stem_neck_heads_fp32": static(fp32=HEADS + NECK + STEM),
    "static_percentile_heads_fp32": static("percentile"),
    "static_entropy_heads_fp32": static("entropy"),
    "static_minmax_heads_fp32_s8s8": static(activation="s8"),
    "static_minmax_heads_fp32_reduce_range": static(reduce_range=True),
    "dynamic_all": {"scheme": "dynamic"},
}
METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}


def quantize(option: dict[str, Any], source: Path, target: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    from modelyard.export.onnx import _Feeds

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if option["scheme"] == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8, per_channel=True)
            return
        kept = [n.name for n in onnx.load(str(prepared)).graph.node if n.name.startswith(option["fp32"])]
        quantize_static(
            str(prepared),
            str(target),
            _Feeds(feeds),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=option.get("reduce_range", False),
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QInt8 if option.get("activation") == "s8" else QuantType.QUInt8,
            calibrate_method=METHODS[option["method"]],
            nodes_to_exclude=kept,
            extra_options={"ActivationSymmetric": option.get("activation") == "s8"},
        )


def confident(dets: np.ndarray, min_score: float) -> np.ndarray:
    return dets[dets[:, 4] >= min_score]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from modelyard.metrics.detection import _iou

    return _iou(a[:, :4], b[:, :4]) if len(a) and len(b) else np.zeros((len(a), len(b)))


def explain(ref: np.ndarray, new: np.ndarray, min_score: float) -> list[dict[str, Any]]:
    """Each confident box of either model with its best same-class counterpart (any score) in the other."""
    rows = []
    for side, mine, other in (("original", ref, new), ("int8", new, ref)):
        mine = confident(mine[mine[:, 4] >= 0], min_score)
        other = other[other[:, 4] >= 0]
        overlap = iou(mine, other)
        for i, box in enumerate(mine):
            same = other[:, 5] == box[5]
            best = int(np.argmax(np.where(same, overlap[i], -1))) if same.any() else -1
            found = best >= 0 and overlap[i, best] > 0
            rows.append(
                {
                    "in": side,
                    "score": round(float(box[4]), 3),
                    "box": [round(float(v)) for v in box[:4]],
                    "other_score": round(float(other[best, 4]), 3) if found else None,
                    "other_iou": round(float(overlap[i, best]), 3) if found else 0.0,
                }
            )
    return rows


def shifts(ref: np.ndarray, new: np.ndarray, floor: float = 0.1) -> dict[str, Any]:
    """How far int8 moves the boxes that matter: each original box scoring >= `floor`, paired with the
    best-overlapping same-class int8 box; |score change| and IoU percentiles over all pairs."""
    changes, overlaps = [], []
    for r, n in zip(ref, new, strict=True):
        r, n = r[r[:, 4] >= floor], n[n[:, 4] >= 0]
        overlap = iou(r, n)
        for i, box in enumerate(r):
            same = np.where(n[:, 5] == box[5], overlap[i], -1) if len(n) else np.array([-1.0])
            j = int(np.argmax(same))
            overlaps.append(float(max(same[j], 0.0)))
            changes.append(abs(float(box[4] - n[j, 4])) if same[j] > 0 else float(box[4]))
    q = lambda v, p: round(float(np.percentile(v, p)), 4) if v else None  # noqa: E731
    return {
        "boxes": len(changes),
        "score_change": {"p50": q(changes, 50), "p95": q(changes, 95), "max": q(changes, 100)},
        "iou": {"p5": q(overlaps, 5), "p50": q(overlaps, 50), "min": q(overlaps, 0)},
    }


def verdict(rows: list[dict[str, Any]], min_score: float, margin: float) -> str:
    """jitter: every box confident in only one model has a counterpart (IoU >= 0.5) within `margin` under
    min_score; else moved (a counterpart above min_score but IoU < 0.5) or missing/extra (none)."""
    unmatched = [
        r
        for r in rows
        if not (r["other_score"] is not None and r["other_score"] >= min_score and r["other_iou"] >= 0.5)
    ]
    if not unmatched:
        return "matched (one-to-one assignment differs)"
    if all(r["other_iou"] >= 0.5 and r["other_score"] >= min_score - margin for r in unmatched):
        return "jitter"
    if any(r["other_iou"] < 0.5 and (r["other_score"] or 0) >= min_score for r in unmatched):
        return "moved"
    return "missing_or_extra"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--latency-samples", type=int, default=30)
    parser.add_argument("--margin", type=float, default=None, help="default: the product's SCORE_MARGIN")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["MODELYARD_DEVICE"] = "cpu"
    from modelyard import loader
    from modelyard.data.images import load_image
    from modelyard.export import parity
    from modelyard.export.onnx import to_onnx
    from modelyard.learners.detection import SCORE_MARGIN, OnnxDetectorLearner

    args.margin = SCORE_MARGIN if args.margin is None else args.margin

    model = loader.load(args.bundle)
    learner = model.learner
    min_score = learner.options.min_score
    splits = model.task.prepare(model.config).splits
    train = splits["train"]
    calibration_paths = set(train["path"].sample(min(64, len(train)), random_state=0))
    held = train[~train["path"].isin(calibration_paths)]
    sets = {"validation": splits["validation"], "test": splits["test"], "train_not_calibration": held}
    images = {k: [load_image(p) for p in v["path"]] for k, v in sets.items()}
    targets = {k: learner.export_examples(v)[1] for k, v in sets.items()}
    reference = {k: learner.export_outputs(v) for k, v in images.items()}
    result: dict[str, Any] = {
        "bundle": str(args.bundle),
        "image_size": learner.size,
        "min_score": min_score,
        "margin": args.margin,
        "images": {k: len(v) for k, v in sets.items()},
        "cpu_threads": len(os.sched_getaffinity(0)),
        "load_average_start": os.getloadavg(),
        "pytorch": {f"{k}_map50": learner.parity_scores(reference[k], targets[k])["map50"] for k in sets},
        "options": {},
    }
    work = Path(tempfile.mkdtemp(prefix="det-int8-"))
    fp32 = work / "fp32.onnx"
    to_onnx(learner.onnx_graph(), fp32)
    feeds = learner.calibration_feeds(train, 64)
    runners: dict[str, Any] = {"pytorch": learner}

    def score(name: str, path: Path, entry: dict[str, Any]) -> None:
        runner = runners[name] = OnnxDetectorLearner(path, learner.labels, learner.spec, learner.options)
        entry["size_mb"] = round(path.stat().st_size / 1e6, 2)
        for split in sets:
            out = runner.export_outputs(images[split])
            entry[f"{split}_map50"] = runner.parity_scores(out, targets[split])["map50"]
            entry[f"{split}_agreement_strict"] = round(learner.agreement(reference[split], out, 0.0), 4)
            entry[f"{split}_agreement_margin"] = round(learner.agreement(reference[split], out, args.margin), 4)
            entry[f"{split}_disagreements"] = [
                {"file": Path(path_).name, "verdict": verdict(rows, min_score, args.margin), "boxes": rows}
                for path_, r, n in zip(sets[split]["path"], reference[split], out, strict=True)
                if learner.agreement(r[None], n[None], 0.0) < 1
                for rows in [explain(r, n, min_score)]
            ]
            entry[f"{split}_shifts"] = shifts(reference[split], out)
        print(
            json.dumps({name: {k: v for k, v in entry.items() if "disagree" not in k and "shift" not in k}}), flush=True
        )
        if args.output:
            args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    result["options"]["fp32_onnx"] = {"settings": {"scheme": "none"}}
    score("fp32_onnx", fp32, result["options"]["fp32_onnx"])
    for name in args.options.split(","):
        option = OPTIONS[name]
        path = work / f"{name}.onnx"
        began = time.perf_counter()
        quantize(option, fp32, path, feeds)
        entry = result["options"][name] = {
            "settings": option,
            "quantize_seconds": round(time.perf_counter() - began, 1),
        }
        score(name, path, entry)
    probes = list(
        np.random.default_rng(0).permutation(sets["validation"]["path"].tolist() + sets["test"]["path"].tolist())
    )
    probes = probes[: args.latency_samples]
    order = list(runners.values())
    for runner in order:
        for x in probes[: parity.WARMUP]:
            runner.export_outputs([x])
    times: list[list[float]] = [[] for _ in order]
    for x in probes:  # one probe through every runtime in turn, so all see the same load
        for which, runner in enumerate(order):
            start = time.perf_counter()
            runner.export_outputs([x])
            times[which].append((time.perf_counter() - start) * 1e3)
    result["latency_ms_single_image"] = {name: parity._percentiles(t) for name, t in zip(runners, times, strict=True)}
    result["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
