"""The object-detection learner: CenterNet on EfficientNet-Lite0 (models/detector.py), box-aware augmentation
(learners/detection_inputs.py), COCO mAP (metrics/detection.py), and the same network through ONNX Runtime.

Predictions are boxes in the input image's pixels: [{"label", "score", "box": [x1, y1, x2, y2]}] per image.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import nn

from modelyard.data.images import load_image, to_rgb
from modelyard.fsutil import atomic_write_json
from modelyard.learners.detection_inputs import DetectionDataset, collate, eval_transform
from modelyard.learners.image_inputs import input_image, request_image
from modelyard.metrics.detection import all_matched, detection_metrics, image_scores
from modelyard.models import detector
from modelyard.runtimes.onnx_session import onnx_session
from modelyard.runtimes.protocol import ONNX_FILE, OnnxGraph
from modelyard.runtimes.torch_int8 import load_weights
from modelyard.training.checkpoint import save_weights

BATCH = 16
MAX_DETECTIONS = 100  # per image, after NMS (COCO's maxDets)
CALIBRATION_BATCH = 8
SPEC_FILE = "detector.json"
SCORE_MARGIN = 0.05  # parity: a box confident in one model must score >= min_score - this in the other
FP32_NODES = ("/smooth/", "/heatmap/", "/box/")  # ONNX names of the modules int8 export leaves in fp32
DEFAULTS = {"epochs": 25, "batch_size": 16, "learning_rate": 1e-3, "scheduler": "cosine", "precision": "fp32"}


class DetectorLearner:
    """A CenterNet and its labels; `spec` holds what `load` needs to rebuild it."""

    export_kind = "detections"
    score_margin = SCORE_MARGIN

    def __init__(self, module: nn.Module | None, labels: list[str], spec: dict[str, Any], options: Any) -> None:
        self.module = module
        self.labels = labels
        self.spec = spec
        self.options = options
        self.backbone = spec["backbone"]
        self.size = spec["image_size"]
        self.precision = "fp32"
        self.label_index = {label: i for i, label in enumerate(labels)}
        self._transform = eval_transform(self.size)

    @classmethod
    def create(cls, labels: list[str], options: Any) -> DetectorLearner:
        pretrained = options.trunk == "imagenet"
        spec = {
            "backbone": "efficientnet-lite0-centernet",
            "trunk": options.trunk,
            "image_size": options.image_size,
            "width": options.head_width,
            "frozen_batchnorm": pretrained,
        }
        module = detector.CenterNet(len(labels), pretrained, spec["width"], spec["frozen_batchnorm"])
        return cls(module, labels, spec, options)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str]) -> DetectorLearner:
        spec = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
        module = detector.CenterNet(len(labels), False, spec["width"], spec["frozen_batchnorm"])
        module = load_weights(module, directory / "model.safetensors").eval()
        return cls(module, labels, spec, options)

    def train_defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def dataset(self, data: pd.DataFrame, training: bool) -> DetectionDataset:
        return DetectionDataset(data, self.label_index, self.size, training)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate(items)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        heat, boxes = self.module(batch["pixels"])  # (B, C, G, G), (B, 4, G, G)
        return detector.focal_loss(heat.float(), batch["heatmap"]) + detector.box_loss(
            boxes.float(), batch["index"], batch["box_target"], batch["box_mask"]
        )

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """The new neck and heads at `lr`; a pretrained trunk `trunk_lr_ratio` times slower; no decay on norms."""
        module = getattr(self.module, "module", self.module)
        head = {id(p) for p in module.head_parameters()}
        ratio = self.options.trunk_lr_ratio if self.spec["trunk"] == "imagenet" else 1.0
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for param in module.parameters():
            rate = lr if id(param) in head else lr * ratio
            groups.setdefault((rate, 0.0 if param.ndim <= 1 else weight_decay), []).append(param)
        return [{"params": p, "lr": r, "weight_decay": d} for (r, d), p in groups.items()]

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        with torch.inference_mode():
            out = module(pixels.to(next(module.parameters()).device))
        module.train(was_training)
        return out[0].float().cpu(), out[1].float().cpu()

    def detect(self, images: list[Image.Image], min_score: float = 0.01) -> list[np.ndarray]:
        """Per image (K, 6) [x1, y1, x2, y2, score, class] in the pixels of the image as sent, after NMS."""
        out: list[np.ndarray] = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            heat, boxes = self._forward(torch.stack([self._transform(im) for im in chunk]))
            decoded = detector.decode(heat, boxes, MAX_DETECTIONS, self.options.nms_iou, min_score)
            for image, dets in zip(chunk, decoded, strict=True):
                dets = dets.numpy().copy()
                width, height = image.info.get("source_size", image.size)  # a large input was shrunk to decode
                dets[:, [0, 2]] *= width / self.size
                dets[:, [1, 3]] *= height / self.size
                out.append(dets)
        return out

    def _detect_files(self, paths: list[str], min_score: float = 0.01) -> list[np.ndarray]:
        """`detect` over image files, decoded a batch at a time (memory stays bounded on large splits)."""
        out: list[np.ndarray] = []
        for start in range(0, len(paths), BATCH):
            out += self.detect([load_image(p) for p in paths[start : start + BATCH]], min_score)
        return out

    def _truths(self, data: pd.DataFrame) -> list[dict[str, np.ndarray]]:
        return [
            {
                "boxes": np.asarray([b for b, n in zip(boxes, names, strict=True) if n in self.label_index]).reshape(
                    -1, 4
                ),
                "classes": np.asarray([self.label_index[n] for n in names if n in self.label_index], dtype=int),
            }
            for boxes, names in zip(data["boxes"], data["labels"], strict=True)
        ]

    @staticmethod
    def _as_pred(dets: np.ndarray) -> dict[str, np.ndarray]:
        dets = dets[dets[:, 4] >= 0] if len(dets) else dets.reshape(0, 6)
        return {"boxes": dets[:, :4], "scores": dets[:, 4], "classes": dets[:, 5].astype(int)}

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        dets = self._detect_files(data["path"].tolist())
        return detection_metrics(self._truths(data), [self._as_pred(d) for d in dets], self.labels)

    def worst_images(self, data: pd.DataFrame, n: int = 8) -> list[dict[str, Any]]:
        """The `n` images with the lowest box F1 (IoU >= 0.5, score >= 0.3), with true and predicted boxes."""
        truths = self._truths(data)
        dets = self._detect_files(data["path"].tolist(), self.options.min_score)
        scored = [(image_scores(t, self._as_pred(d)), i) for i, (t, d) in enumerate(zip(truths, dets, strict=True))]
        return [
            {
                "file": data["file"].iloc[i],
                "path": data["path"].iloc[i],
                "f1": round(score, 3),
                "truth": [
                    {"label": self.labels[c], "box": b.tolist()} for b, c in zip(*truths[i].values(), strict=True)
                ],
                "predicted": self._answer(dets[i])["detections"],
            }
            for score, i in sorted(scored)[:n]
        ]

    def _answer(self, dets: np.ndarray) -> dict[str, Any]:
        return {
            "detections": [
                {"label": self.labels[int(c)], "score": round(float(s), 4), "box": [round(float(v), 1) for v in box]}
                for *box, s, c in dets.tolist()
                if s >= self.options.min_score
            ]
        }

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """Boxes scoring at least `model.min_score`, most confident first (`top_k` does not apply: every box)."""
        return [self._answer(d) for d in self.detect([self.to_image(x) for x in inputs], self.options.min_score)]

    def parse_input(self, item: Any) -> Image.Image:
        """A request's image (base64 string, data: URL or raw bytes) -> RGB; ValueError when it is not one."""
        return request_image(item)

    def to_image(self, item: Any) -> Image.Image:
        """Python API / CLI inputs: a file path (str or Path), a PIL image, bytes or base64."""
        return input_image(item)

    def draw(self, image: Image.Image, answer: dict[str, Any]) -> Image.Image:
        """The image with each detection's box and 'label score' drawn on it."""
        out = to_rgb(image).copy()
        pen = ImageDraw.Draw(out)
        width = max(2, round(max(out.size) / 200))
        for det in answer["detections"]:
            x1, y1, x2, y2 = det["box"]
            pen.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=width)
            pen.text((x1 + width, y1 + width), f"{det['label']} {det['score']:.2f}", fill=(255, 255, 0))
        return out

    def save(self, directory: Path) -> dict[str, Any]:
        save_weights(getattr(self.module, "module", self.module), directory / "model.safetensors")
        atomic_write_json(directory / SPEC_FILE, self.spec)
        return {"labels": self.labels, "image_size": self.size}

    def onnx_graph(self) -> OnnxGraph:
        """The network's raw maps (heatmap logits, box maps); decoding and NMS run outside, as for PyTorch. int8
        quantizes the trunk only: the neck and heads (a few % of the compute) stay fp32 (everything int8
        agreed as often but lost 4 test mAP points on one checkpoint: benchmarks/detection_int8_result.json)."""
        module = getattr(self.module, "module", self.module).eval()
        axes = {"pixels": {0: "batch"}, "heatmap": {0: "batch"}, "boxes": {0: "batch"}}
        pixels = torch.zeros(2, 3, self.size, self.size)
        return OnnxGraph(module, (pixels,), ["pixels"], ["heatmap", "boxes"], axes, "static", FP32_NODES)

    def calibration_feeds(self, data: pd.DataFrame, n: int) -> list[dict[str, np.ndarray]]:
        paths = data["path"].sample(min(n, len(data)), random_state=0).tolist()
        pixels = np.stack([self._transform(load_image(p)).numpy() for p in paths])  # (n, 3, S, S)
        return [{"pixels": pixels[i : i + CALIBRATION_BATCH]} for i in range(0, len(pixels), CALIBRATION_BATCH)]

    def export_examples(self, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        """Image paths and their true boxes, (N, most boxes, 5) [x1, y1, x2, y2, class] padded with -1."""
        truths = self._truths(data)
        most = max([1, *(len(t["classes"]) for t in truths)])
        targets = np.full((len(truths), most, 5), -1.0)
        for i, t in enumerate(truths):
            targets[i, : len(t["classes"])] = np.column_stack([t["boxes"], t["classes"]])
        return data["path"].tolist(), targets

    def export_outputs(self, inputs: list[Any]) -> np.ndarray:
        """(N, MAX_DETECTIONS, 6) detections padded with -1: what the parity check scores (mAP of both)."""
        out = np.full((len(inputs), MAX_DETECTIONS, 6), -1.0)
        for i, dets in enumerate(self.detect([self.to_image(x) for x in inputs])):
            out[i, : len(dets)] = dets[:MAX_DETECTIONS]
        return out

    def parity_scores(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """mAP of padded `export_outputs` against padded `export_examples` targets (the export parity check)."""
        truths = [{"boxes": t[t[:, 4] >= 0, :4], "classes": t[t[:, 4] >= 0, 4].astype(int)} for t in targets]
        return detection_metrics(truths, [self._as_pred(o) for o in outputs], self.labels)

    def agreement(self, ref: np.ndarray, new: np.ndarray, margin: float | None = None) -> float:
        """Share of images whose confident boxes match one to one, both ways: each box scoring >= min_score in
        one model has its own same-class box at IoU >= 0.5 in the other, scoring >= min_score - `margin` there.
        A peak at 0.31 in one model and 0.28 in the other agrees (int8 rounding at the threshold); a moved,
        relabelled, missing or extra box does not (measured on raccoon: benchmarks/detection_int8_result.json)."""
        floor, margin = self.options.min_score, self.score_margin if margin is None else margin

        def above(dets: np.ndarray, score: float) -> np.ndarray:
            return dets[dets[:, 4] >= max(score, 0.0)]  # padding rows score -1

        same = [
            all_matched(above(r, floor), above(n, floor - margin))
            and all_matched(above(n, floor), above(r, floor - margin))
            for r, n in zip(ref, new, strict=True)
        ]
        return float(np.mean(same)) if same else 1.0


class OnnxDetectorLearner(DetectorLearner):
    """The same detector (transform, decoding, NMS) with the network run by ONNX Runtime."""

    def __init__(self, session_path: Path, labels: list[str], spec: dict[str, Any], options: Any) -> None:
        super().__init__(None, labels, spec, options)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str]) -> OnnxDetectorLearner:
        spec = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
        return cls(directory / ONNX_FILE, labels, spec, options)

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat, boxes = self.session.run(["heatmap", "boxes"], {"pixels": pixels.numpy()})
        return torch.from_numpy(heat), torch.from_numpy(boxes)

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        atomic_write_json(directory / SPEC_FILE, self.spec)
        return {"labels": self.labels, "image_size": self.size}
