"""The multimodal classifier learner: frozen EfficientNet-Lite0 image features + frozen sentence-encoder text
features, late-fused by small heads (`models.fusion`) that the shared loop trains.

The encoders stay frozen, so each row's features are computed once per run and cached; an epoch then costs
milliseconds. The bundle stores only the heads (with the feature statistics) and names the bundled encoders,
which are installed packages, as a LoRA bundle names its base model.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, Field, field_validator

from modelyard.data.blank import is_blank
from modelyard.data.images import load_image, to_rgb
from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_json
from modelyard.learners import linear_probe
from modelyard.learners.image_inputs import EFFICIENTNET, Preprocessing, input_image, preprocessing_for, request_image
from modelyard.metrics.classification import classification_metrics, top_k_answers
from modelyard.models import efficientnet
from modelyard.models.fusion import LateFusionHeads
from modelyard.protocols import validate_input
from modelyard.retrieval.encoder import TextEmbedder
from modelyard.runtimes.torch_int8 import load_weights
from modelyard.training.checkpoint import save_weights

HEADS = ("image_only", "text_only", "fusion")
HEADLINE = ("accuracy", "macro_f1")
IMAGE_BATCH = 32
DEFAULTS = {  # linear heads on cached features, started from probes: a few gentle epochs (LP-FT's second half)
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 1e-4,
    "weight_decay": 0.05,
    "scheduler": "cosine",
    "warmup_ratio": 0.0,
    "precision": "fp32",
}


class MultimodalInput(BaseModel):
    """One row: an image (base64 over HTTP; a file path too from the CLI and Python API) and its text."""

    image: str = Field(
        description="the image file's bytes, base64-encoded (a data: URL works too)",
        json_schema_extra={"contentEncoding": "base64"},  # the server's text limit is not for this field
    )
    text: str = Field(description="the text that goes with the image (a title, a message, a caption); not blank")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if is_blank(text):
            raise ValueError("blank; a row needs the text that goes with its image (training refuses blank texts)")
        return text


@dataclass(frozen=True)
class Row:
    """A parsed input: the decoded image and its text."""

    image: Image.Image
    text: str


class Encoders:
    """The two frozen encoders, loaded once; features are float32 numpy arrays."""

    def __init__(self, text_encoder: str, prep: Preprocessing) -> None:
        self.trunk = efficientnet.imagenet_model().eval()
        self.trunk.reset_classifier(0)
        self.text = TextEmbedder.load(text_encoder, precision="fp32")
        self.transform = prep.eval_transform()
        self.resize = prep.resize

    @torch.inference_mode()
    def images(self, images: list[Image.Image]) -> np.ndarray:
        out = [
            self.trunk(torch.stack([self.transform(im) for im in images[i : i + IMAGE_BATCH]])).float().numpy()
            for i in range(0, len(images), IMAGE_BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, efficientnet.FEATURES), dtype=np.float32)

    def texts(self, texts: list[str]) -> np.ndarray:
        return self.text.embed(texts, "query")


@functools.lru_cache(maxsize=2)
def shared_encoders(text_encoder: str, prep: Preprocessing) -> Encoders:
    """Frozen encoders are the same for every bundle that names them: the trained learner and the bundle loaded
    back after training (or several served bundles) share one copy instead of loading ~110 MB each time."""
    return Encoders(text_encoder, prep)


class MultimodalClassifierLearner:
    """Per-modality heads and a fusion head over frozen image and text features."""

    def __init__(
        self, module: LateFusionHeads | None, labels: list[str], spec: dict[str, Any], prep: Preprocessing
    ) -> None:
        self.module = module
        self.labels = labels
        self.spec = spec
        self.prep = prep
        self.backbone = f"{spec['image_encoder']}+{spec['text_encoder']}"
        self.label_index = {label: i for i, label in enumerate(labels)}
        self._encoders: Encoders | None = None
        self._image_cache: dict[str, np.ndarray] = {}  # rows of the splits trained or evaluated on: path -> features
        self._text_cache: dict[str, np.ndarray] = {}

    @classmethod
    def create(cls, labels: list[str], options: Any, train: pd.DataFrame) -> MultimodalClassifierLearner:
        """Untrained heads whose feature statistics come from `train` (its features are cached on the way)."""
        spec = {
            "image_encoder": EFFICIENTNET,
            "text_encoder": options.text_encoder,
            "image_size": options.image_size,
            "fusion": options.fusion,
            "dropout": options.dropout,
            "label_smoothing": options.label_smoothing,
            "num_classes": len(labels),
        }
        prep = preprocessing_for(EFFICIENTNET, options.image_size, "none")
        learner = cls(None, labels, spec, prep)  # the heads' text width is known once a text is encoded
        image, text = learner.frame_features(train)
        spec["text_dim"] = int(text.shape[1])
        learner.module = _heads(spec, efficientnet.FEATURES, spec["text_dim"])
        learner.module.set_statistics(torch.from_numpy(image), torch.from_numpy(text))
        if options.head_init == "linear_probe":
            learner.start_from_probes(image, text, train["label"].map(learner.label_index).to_numpy())
        return learner

    def start_from_probes(self, image: np.ndarray, text: np.ndarray, y: np.ndarray) -> None:
        """Each modality head starts as logistic regression on its standardised features (C chosen by
        cross-validation); the fusion starts as a x image logits + b x text logits, with a and b fitted on
        out-of-fold probe logits (stacking). In-sample logits would not do: the image features alone separate
        the training rows, so a fusion fitted on them learns to ignore the text."""
        x_image, x_text = (x.numpy() for x in self.module.standardise(torch.from_numpy(image), torch.from_numpy(text)))
        fitted = [linear_probe.fit_probe(x, y) for x in (x_image, x_text)]
        weights = _stacking_weights(
            [_out_of_fold_logits(p, x, y) for p, x in zip(fitted, (x_image, x_text), strict=True)], y
        )
        self.spec["stacking"] = [round(float(w), 4) for w in weights]
        heads = [linear_probe.linear_head(p) for p in fitted]
        self.module.start_from(*heads, weights=weights)

    @classmethod
    def load(cls, directory: Path, labels: list[str]) -> MultimodalClassifierLearner:
        spec = json.loads((directory / "multimodal_model.json").read_text(encoding="utf-8"))
        prep = Preprocessing.from_dict(json.loads((directory / "preprocessing.json").read_text(encoding="utf-8")))
        module = load_weights(_heads(spec, efficientnet.FEATURES, spec["text_dim"]), directory / "model.safetensors")
        return cls(module.eval(), labels, spec, prep)

    @property
    def encoders(self) -> Encoders:
        if self._encoders is None:
            self._encoders = shared_encoders(self.spec["text_encoder"], self.prep)
        return self._encoders

    def train_defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def frame_features(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1280) image and (N, D) text features of a split's rows, each image and text encoded once per run."""
        new_paths = [p for p in dict.fromkeys(data["path"]) if p not in self._image_cache]
        for start in range(0, len(new_paths), IMAGE_BATCH):
            batch = new_paths[start : start + IMAGE_BATCH]
            features = self.encoders.images([load_image(p) for p in batch])  # decoded as predict decodes them
            self._image_cache.update(zip(batch, features, strict=True))
        new_texts = [t for t in dict.fromkeys(data["text"]) if t not in self._text_cache]
        if new_texts:
            self._text_cache.update(zip(new_texts, self.encoders.texts(new_texts), strict=True))
        if not len(data):
            return np.zeros((0, efficientnet.FEATURES), np.float32), np.zeros(
                (0, self.spec.get("text_dim", 1)), np.float32
            )
        image = np.stack([self._image_cache[p] for p in data["path"]])
        text = np.stack([self._text_cache[t] for t in data["text"]])
        return image.astype(np.float32), text.astype(np.float32)

    def dataset(self, data: pd.DataFrame, training: bool) -> list[dict[str, Any]]:
        image, text = self.frame_features(data)
        labels = data["label"].map(self.label_index).fillna(-1).astype(int).tolist()
        return [{"image": image[i], "text": text[i], "labels": labels[i]} for i in range(len(data))]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(np.stack([x["image"] for x in items])),  # (B, 1280)
            "text": torch.from_numpy(np.stack([x["text"] for x in items])),  # (B, D)
            "labels": torch.tensor([x["labels"] for x in items]),  # (B,)
        }

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The three heads' cross-entropies summed: the unimodal heads are trained as well as the fusion."""
        logits = self.module(batch["image"], batch["text"])
        smoothing = self.spec["label_smoothing"]
        return sum(F.cross_entropy(logits[h].float(), batch["labels"], label_smoothing=smoothing) for h in HEADS)

    @torch.inference_mode()
    def _probabilities(self, image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        logits = module(torch.from_numpy(image).to(device), torch.from_numpy(text).to(device))
        module.train(was_training)
        return {h: logits[h].float().softmax(-1).cpu().numpy() for h in HEADS}

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        """The fusion head's metrics, plus `modalities`: image only, text only and fusion on these same rows."""
        known = data[data["label"].isin(self.label_index)]
        if known.empty:
            return {}
        probs = self._probabilities(*self.frame_features(known))
        y_true = known["label"].map(self.label_index).tolist()
        scored = {h: classification_metrics(y_true, probs[h].argmax(1).tolist(), self.labels) for h in HEADS}
        comparison = {h: {k: scored[h][k] for k in HEADLINE} for h in HEADS}
        return {**scored["fusion"], "modalities": comparison}

    def parse_input(self, item: Any) -> Row:
        """A request's row: {"image": base64, "text": ...}; ValueError (HTTP 422) when it is not one."""
        if isinstance(item, Row):
            return item
        request = validate_input(MultimodalInput, item)
        return Row(request_image(request.image), request.text)

    def to_row(self, item: Any) -> Row:
        """Python API / CLI inputs: like a request, but the image may also be a file path or a PIL image."""
        if isinstance(item, Row):
            return item
        if isinstance(item, dict) and isinstance(item.get("image"), Image.Image):
            # the row's other fields are checked as a request's: a blank or missing text is refused the same way
            request = validate_input(MultimodalInput, {**item, "image": "(a PIL image)"})
            return Row(to_rgb(item["image"]), request.text)
        if isinstance(item, dict) and isinstance(item.get("image"), Path):
            item = {**item, "image": str(item["image"])}
        if not isinstance(item, dict | MultimodalInput):
            raise DataError(
                f"a multimodal model takes rows with an image and a text, not a {type(item).__name__}",
                'pass {"image": PATH_OR_BASE64, "text": TEXT}, or `modelyard predict BUNDLE --input FILE` with '
                "the image and text columns of the training data",
            )
        request = validate_input(MultimodalInput, item)
        return Row(input_image(request.image), request.text)

    def predict_proba(self, inputs: list[Any]) -> np.ndarray:
        """(N, num_classes) probabilities of the fusion head."""
        return self.modality_probabilities(inputs)["fusion"]

    def modality_probabilities(self, inputs: list[Any]) -> dict[str, np.ndarray]:
        """Each head's (N, num_classes) probabilities: image_only, text_only, fusion."""
        rows = [self.to_row(x) for x in inputs]
        image = self.encoders.images([r.image for r in rows])
        text = self.encoders.texts([r.text for r in rows]) if rows else np.zeros((0, self.spec["text_dim"]))
        return self._probabilities(image, text.astype(np.float32))

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """The fusion head's answer, with what each modality alone would say beside it."""
        probs = self.modality_probabilities(inputs)
        answers = top_k_answers(probs["fusion"], self.labels, top_k)
        for i, answer in enumerate(answers):
            answer["modalities"] = {
                h: {"label": self.labels[int(probs[h][i].argmax())], "score": float(probs[h][i].max())}
                for h in ("image_only", "text_only")
            }
        return answers

    def reference_profile(self, splits: dict[str, Any]) -> dict[str, Any]:
        """Label shares of the training rows; image-and-text inputs get no drift profile yet."""
        shares = splits["train"]["label"].value_counts(normalize=True).sort_index()
        return {
            "labels": {
                "rows": len(splits["train"]),
                "distribution": {k: round(float(v), 6) for k, v in shares.items()},
            },
            "inputs": {"skipped": "image-and-text rows are not profiled for input drift"},
        }

    def save(self, directory: Path) -> dict[str, Any]:
        save_weights(getattr(self.module, "module", self.module), directory / "model.safetensors")
        atomic_write_json(directory / "preprocessing.json", self.prep.as_dict())
        atomic_write_json(directory / "multimodal_model.json", self.spec)
        return {"labels": self.labels, "image_size": self.prep.image_size, "encoders": self.backbone}


def _heads(spec: dict[str, Any], image_dim: int, text_dim: int) -> LateFusionHeads:
    return LateFusionHeads(image_dim, text_dim, spec["num_classes"], spec["fusion"], spec["dropout"])


def _out_of_fold_logits(probe: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """(N, K) logits of each training row from a probe (same C) fitted without that row's fold; None when a
    class has fewer than 2 rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(5, int(np.bincount(y).min()))
    if folds < 2:
        return None
    chosen = probe.steps[-1][1]
    c = chosen.best_params_["C"] if hasattr(chosen, "best_params_") else chosen.C  # no grid search per fold
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=c))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    scores = cross_val_predict(estimator, x, y, cv=cv, method="decision_function")
    return np.stack([-scores / 2, scores / 2], axis=1) if scores.ndim == 1 else scores


def _stacking_weights(logits: list[np.ndarray | None], y: np.ndarray) -> tuple[float, float]:
    """(a, b) >= 0 minimising the cross-entropy of a x image logits + b x text logits plus an L2 penalty (a unit
    Gaussian prior, as logistic regression's C=1); (1, 1) without logits. Unpenalised, out-of-fold logits that a
    modality gets all right (as on a few dozen rows) drive its weight without bound and every answer to score 1."""
    if any(x is None for x in logits):
        return 1.0, 1.0
    image, text = (torch.from_numpy(x.astype(np.float32)) for x in logits)
    target = torch.as_tensor(np.array(y, dtype=np.int64))
    raw = torch.zeros(2, requires_grad=True)  # softplus(raw) = the weights, positive
    optimizer = torch.optim.LBFGS([raw], max_iter=100)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        a, b = F.softplus(raw)
        loss = F.cross_entropy(a * image + b * text, target) + (a**2 + b**2) / (2 * len(target))
        loss.backward()
        return loss

    optimizer.step(closure)
    a, b = F.softplus(raw.detach())
    return float(a), float(b)
