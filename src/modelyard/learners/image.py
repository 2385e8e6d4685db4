"""The image classifier learner: torchvision v2 preprocessing + a CNN (EfficientNet-Lite0 or cnn-scratch).

The evaluation transform is data (`Preprocessing`, saved as preprocessing.json), so prediction and serving
rebuild exactly the transform the model was validated with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from modelyard.data.images import load_image
from modelyard.fsutil import atomic_write_json
from modelyard.learners import linear_probe
from modelyard.learners.image_inputs import (
    EFFICIENTNET,
    ImageDataset,
    Preprocessing,
    input_image,
    preprocessing_for,
    request_image,
)
from modelyard.metrics.classification import classification_metrics, top_k_answers
from modelyard.models import cnn, efficientnet
from modelyard.precision import autocast
from modelyard.runtimes.onnx_session import onnx_session
from modelyard.runtimes.protocol import ONNX_FILE, OnnxGraph
from modelyard.runtimes.torch_int8 import has_int8_layers, load_weights, run_precision
from modelyard.training.checkpoint import save_weights

CNN_SCRATCH = "cnn-scratch"
PREDICT_BATCH = 32
CALIBRATION_BATCH = 8

# bf16 autocast measured no faster (with channels_last 3-6x slower) for these CNNs on this CPU: fp32 there.
PRECISION = "auto" if torch.cuda.is_available() else "fp32"
PROBE_HEAD_LR = 3e-5  # measured on hymenoptera: 1e-5 and 3e-5 alike (val 96.7%), 1e-4 and 2e-4 below the probe
DEFAULTS = {
    EFFICIENTNET: {
        "epochs": 8,
        "batch_size": 16,
        "learning_rate": 2e-4,
        "scheduler": "cosine",
        "precision": PRECISION,
    },
    CNN_SCRATCH: {
        "epochs": 30,
        "batch_size": 64,
        "learning_rate": 2e-3,
        "scheduler": "cosine",
        "precision": PRECISION,
    },
}


def build_module(spec: dict[str, Any], pretrained: bool) -> nn.Module:
    if spec["backbone"] == EFFICIENTNET:
        return efficientnet.EfficientNetClassifier(
            spec["num_classes"],
            pretrained=pretrained,
            dropout=spec["dropout"],
            frozen_batchnorm=spec.get("frozen_batchnorm", False),
        )
    return cnn.SmallResNet(spec["num_classes"], spec["image_size"], tuple(spec["widths"]), dropout=spec["dropout"])


class ImageClassifierLearner:
    """A CNN and its preprocessing; `spec` holds what `load` needs to rebuild the architecture."""

    def __init__(
        self, module: nn.Module, labels: list[str], spec: dict[str, Any], prep: Preprocessing, options: Any
    ) -> None:
        self.module = module
        self.labels = labels
        self.spec = spec
        self.backbone = spec["backbone"]
        self.prep = prep
        self.options = options
        self.precision = spec.get("precision", "fp32")
        self.channels_last = spec.get("channels_last", False)
        self.label_index = {label: i for i, label in enumerate(labels)}
        self._eval_transform = prep.eval_transform()
        self.start_weights: dict[str, torch.Tensor] | None = None  # WiSE-FT's other end: the LP-initialised model

    @classmethod
    def create(cls, backbone: str, labels: list[str], image_size: int, augment: str, options: Any):
        spec = {
            "backbone": backbone,
            "num_classes": len(labels),
            "image_size": image_size,
            "dropout": options.dropout,
            "widths": list(options.widths),
            "channels_last": backbone == EFFICIENTNET and options.channels_last,
            "frozen_batchnorm": backbone == EFFICIENTNET and options.frozen_batchnorm,
        }
        module = build_module(spec, pretrained=True)
        if spec["channels_last"]:
            module = module.to(memory_format=torch.channels_last)
        eval_size = options.eval_size if backbone == EFFICIENTNET else None
        return cls(module, labels, spec, preprocessing_for(backbone, image_size, augment, eval_size), options)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str]) -> ImageClassifierLearner:
        spec, prep = read_specs(directory)
        module = load_weights(build_module(spec, pretrained=False), directory / "model.safetensors")
        if spec.get("channels_last"):
            module = module.to(memory_format=torch.channels_last)
        module.eval()
        spec = {**spec, "precision": run_precision(module, spec.get("precision", "fp32"))}
        return cls(module, labels, spec, prep, options)

    @property
    def differentiable(self) -> bool:
        """Whether gradients reach the pixels (explanations): not through ONNX Runtime or int8 kernels."""
        return self.module is not None and not has_int8_layers(self.module)

    @property
    def feature_dim(self) -> int:
        return efficientnet.FEATURES if self.backbone == EFFICIENTNET else self.spec["widths"][-1]

    def train_defaults(self) -> dict[str, Any]:
        """A probe-initialised head gives small gradients from the start: the trunk then takes a gentle LR (LP-FT,
        Kumar et al. 2022); 2e-4 let the first epoch pull hymenoptera's validation 2-11 points below the probe."""
        defaults = dict(DEFAULTS[self.backbone])
        if self.probe_head:
            defaults["learning_rate"] = PROBE_HEAD_LR
        return defaults

    @property
    def probe_head(self) -> bool:
        """Whether the head starts from a linear probe of the pretrained trunk (LP-FT) rather than at random."""
        return self.backbone == EFFICIENTNET and self.options.head_init == "linear_probe"

    @torch.no_grad()
    def start_head_from_probe(self, train: pd.DataFrame) -> None:
        """LP-FT's first half: logistic regression on the trunk's features of the training images becomes the head."""
        paths = train["path"].tolist()
        x = np.concatenate([self.embed(paths[i : i + PREDICT_BATCH]) for i in range(0, len(paths), PREDICT_BATCH)])
        weight, bias = linear_probe.linear_head(linear_probe.fit_probe(x, train["label"].map(self.label_index).values))
        layer = [m for m in self.module.head.modules() if isinstance(m, nn.Linear)][-1]
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        if self.options.wise_ft < 1:
            self.start_weights = {k: v.clone() for k, v in self.module.state_dict().items()}

    @torch.no_grad()
    def finish_training(self) -> bool:
        """WiSE-FT (Wortsman et al. 2022): the kept weights are (1 - a) x start + a x fine-tuned, a = `wise_ft`.

        The start is the pretrained trunk under the linear-probe head, i.e. the frozen-features baseline, so the
        mix keeps what fine-tuning learnt without straying far from features that already worked.
        """
        if self.start_weights is None:
            return False
        alpha = self.options.wise_ft
        module = getattr(self.module, "module", self.module)
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.lerp(self.start_weights[name].to(tensor.device, tensor.dtype), tensor, alpha))
        return True

    def kept_after_training(self) -> str | None:
        """WiSE-FT's averaging, which `finish_training` applies after the last evaluation of training."""
        if not self.probe_head or self.options.wise_ft >= 1:
            return None
        return (
            f"WiSE-FT (model.wise_ft {self.options.wise_ft:g}) averaged the fine-tuned weights with the linear-probe "
            "start after the last evaluation"
        )

    def dataset(self, data: pd.DataFrame, training: bool) -> ImageDataset:
        transform = self.prep.train_transform() if training else self._eval_transform
        labels = data["label"].map(self.label_index).fillna(-1).astype(int).tolist()
        # Reduced-scale JPEG decoding only under augmentation: evaluation decodes exactly as predict and serve do.
        return ImageDataset(data["path"].tolist(), labels, transform, self.prep.resize if training else None)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pixels = torch.stack([x["pixels"] for x in items])  # (B, 3, H, W)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return {"pixels": pixels, "labels": torch.tensor([x["labels"] for x in items])}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.module(batch["pixels"])  # (B, num_classes)
        return F.cross_entropy(logits.float(), batch["labels"], label_smoothing=self.options.label_smoothing)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Trunk at `lr`, the new head `head_lr_multiplier` times faster; no decay on BatchNorm and biases.

        EfficientNet's trunk layers learn `layer_decay` times slower per stage below the head (layer-wise LR
        decay): the stem's generic features move least.
        """
        module = getattr(self.module, "module", self.module)
        head_ids = {id(p) for p in module.head_parameters()}
        random_head = self.backbone == EFFICIENTNET and not self.probe_head
        multiplier = self.options.head_lr_multiplier if random_head else 1.0
        layer_decay = self.options.layer_decay if self.backbone == EFFICIENTNET else 1.0
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            decay = 0.0 if param.ndim <= 1 else weight_decay
            rate = lr * multiplier if id(param) in head_ids else lr * layer_decay ** efficientnet.layer_depth(name)
            groups.setdefault((rate, decay), []).append(param)
        return [{"params": p, "lr": rate, "weight_decay": decay} for (rate, decay), p in groups.items()]

    def _run(self, images: list[Image.Image], fn: str) -> np.ndarray:
        """`fn` ("forward" -> probabilities, or "features") over images in batches of the evaluation transform."""
        outputs = [
            self._run_batch(torch.stack([self._eval_transform(im) for im in images[start : start + PREDICT_BATCH]]), fn)
            for start in range(0, len(images), PREDICT_BATCH)
        ]
        width = len(self.labels) if fn == "forward" else self.feature_dim
        return np.concatenate(outputs) if outputs else np.zeros((0, width), dtype=np.float32)

    @torch.inference_mode()
    def _run_batch(self, pixels: torch.Tensor, fn: str) -> np.ndarray:
        """One batch (B, 3, H, W) through the torch module in eval mode."""
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, device):
            out = getattr(module, fn)(pixels.to(device)).float()
        module.train(was_training)
        return (out.softmax(-1) if fn == "forward" else out).cpu().numpy()

    def _frame_images(self, data: pd.DataFrame) -> list[Image.Image]:
        return [load_image(p) for p in data["path"]]

    def predict_proba(self, inputs: list[Any]) -> np.ndarray:
        return self._run([self.to_image(x) for x in inputs], "forward")

    def embed(self, inputs: list[Any]) -> np.ndarray:
        """Pooled CNN features (for drift monitoring)."""
        return self._run([self.to_image(x) for x in inputs], "features")

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        units, outputs = self.eval_outputs(data)
        return self.eval_score(data, outputs[np.argsort(units)])

    def eval_outputs(self, data: pd.DataFrame, shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Rows and their predicted label indices, from every shard[1]-th batch of 256 images (ShardedEvaluation)."""
        starts = range(0, len(data), 256)[shard[0] :: shard[1]]
        if not starts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        preds = [self._run(self._frame_images(data.iloc[i : i + 256]), "forward").argmax(1) for i in starts]
        return np.concatenate([np.arange(i, min(i + 256, len(data))) for i in starts]), np.concatenate(preds)

    def eval_score(self, data: pd.DataFrame, outputs: np.ndarray) -> dict[str, Any]:
        known = data["label"].isin(self.label_index).to_numpy()
        y_true = data["label"][known].map(self.label_index).tolist()
        return classification_metrics(y_true, outputs[known].tolist(), self.labels)

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        return top_k_answers(self.predict_proba(inputs), self.labels, top_k)

    def parse_input(self, item: Any) -> Image.Image:
        """A request's image (base64 string, data: URL or raw bytes) -> RGB; ValueError when it is not one."""
        return request_image(item)

    def to_image(self, item: Any) -> Image.Image:
        """Python API / CLI inputs: a file path (str or Path), a PIL image, bytes or base64."""
        return input_image(item)

    def save(self, directory: Path) -> dict[str, Any]:
        module = getattr(self.module, "module", self.module)
        save_weights(module, directory / "model.safetensors")
        atomic_write_json(directory / "preprocessing.json", self.prep.as_dict())
        atomic_write_json(directory / "image_model.json", {**self.spec, "precision": self.precision})
        return {"labels": self.labels, "image_size": self.prep.image_size}

    def onnx_graph(self) -> OnnxGraph:
        """Logits and pooled features from normalised pixels, dynamic in batch; static int8 (convolutions)."""
        module = getattr(self.module, "module", self.module)
        pixels = torch.zeros(2, 3, self.prep.image_size, self.prep.image_size)  # what the eval transform makes
        axes = {"pixels": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}}
        return OnnxGraph(_LogitsAndFeatures(module), (pixels,), ["pixels"], ["logits", "features"], axes, "static")

    def calibration_feeds(self, data: pd.DataFrame, n: int) -> list[dict[str, np.ndarray]]:
        """`n` training images (a seeded sample) through the evaluation transform: what the model will be fed."""
        paths = data["path"].sample(min(n, len(data)), random_state=0).tolist()
        pixels = np.stack([self._eval_transform(load_image(p)).numpy() for p in paths])  # (n, 3, H, W)
        return [{"pixels": pixels[i : i + CALIBRATION_BATCH]} for i in range(0, len(pixels), CALIBRATION_BATCH)]

    def export_examples(self, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        known = data[data["label"].isin(self.label_index)]
        return known["path"].tolist(), known["label"].map(self.label_index).to_numpy()

    def export_outputs(self, inputs: list[Any]) -> np.ndarray:
        return self.predict_proba(inputs)


def read_specs(directory: Path) -> tuple[dict[str, Any], Preprocessing]:
    """The architecture spec and the evaluation transform a bundle was validated with."""
    spec = json.loads((directory / "image_model.json").read_text(encoding="utf-8"))
    prep = Preprocessing.from_dict(json.loads((directory / "preprocessing.json").read_text(encoding="utf-8")))
    return spec, prep


class _LogitsAndFeatures(nn.Module):
    """The exported graph: both outputs, so the ONNX learner serves `predict` and `embed` alike."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.classifier.features(pixels)  # (B, C)
        return self.classifier.head(features), features  # (B, num_classes), (B, C)


class OnnxImageClassifierLearner(ImageClassifierLearner):
    """The same classifier (the bundle's evaluation transform, labels) answering through ONNX Runtime."""

    def __init__(
        self, session_path: Path, labels: list[str], spec: dict[str, Any], prep: Preprocessing, options: Any
    ) -> None:
        super().__init__(None, labels, spec, prep, options)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str]) -> OnnxImageClassifierLearner:
        spec, prep = read_specs(directory)
        return cls(directory / ONNX_FILE, labels, spec, prep, options)

    def _run_batch(self, pixels: torch.Tensor, fn: str) -> np.ndarray:
        name = "logits" if fn == "forward" else "features"
        out = torch.from_numpy(self.session.run([name], {"pixels": pixels.numpy()})[0]).float()
        return (out.softmax(-1) if fn == "forward" else out).numpy()

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        atomic_write_json(directory / "preprocessing.json", self.prep.as_dict())
        atomic_write_json(directory / "image_model.json", self.spec)
        return {"labels": self.labels, "image_size": self.prep.image_size}
