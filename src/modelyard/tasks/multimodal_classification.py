"""Multimodal classification: rows that carry an image and a text (a product photo and its title, a ticket
screenshot and its message), classified by late fusion of the bundled image and text encoders.

The image-only and text-only heads are trained in the same run on the same rows, so `metrics.json` says what the
fusion gains over each modality alone (`test.modalities`).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.errors import DataError, ModelNotFoundError
from modelyard.learners.image_inputs import EFFICIENTNET
from modelyard.learners.multimodal import MultimodalClassifierLearner, MultimodalInput
from modelyard.metrics.classification import METRIC_NAMES
from modelyard.models import catalog
from modelyard.protocols import PreparedData
from modelyard.retrieval.encoder import encoder_folder
from modelyard.tasks import register_task
from modelyard.tasks._labels import drop_unseen_labels

if TYPE_CHECKING:
    import pandas as pd

STARTER = """\
# modelyard config: multimodal classification (an image and a text per row)
name: my-multimodal-classifier      # names the run and the registered model
task: multimodal_classification
data:
  train: data/train.csv             # .csv .tsv .jsonl; image paths are relative to this file's folder
  test: null                        # optional; carved from train when absent (so is validation)
  split: {validation: 0.1, test: 0.1, seed: 42, stratify: true}
  image_column: image
  text_column: text
  label_column: label
model:
  text_encoder: minilm-l6           # minilm-l6 (English) | multilingual-e5-small | a local Hugging Face folder
  image_size: 224                   # EfficientNet-Lite0 (ImageNet) sees a 224 px centre crop
  fusion: concat                    # concat: a head over both feature sets | weighted_logits: mix the two heads
  head_init: linear_probe           # probes per modality, fusion weights stacked on out-of-fold logits
train:
  epochs: null                      # null = 10 gentle epochs over cached features (LR 1e-4)
  early_stopping: {patience: 3, metric: macro_f1}
"""


class MultimodalDataConfig(DataConfig):
    image_column: str = Field("image", description="column of image paths (relative to the data file)")
    text_column: str = Field("text", description="column of the text that goes with each image")
    label_column: str = Field("label", description="column with the class")


class MultimodalModelConfig(ModelConfig):
    backbone: str = Field(
        "auto", description=f"auto: frozen {EFFICIENTNET} image features + frozen text_encoder features"
    )
    text_encoder: str = Field("minilm-l6", description="a bundled text encoder or a local Hugging Face folder")
    image_size: int = Field(224, ge=32, le=512, description="the image encoder's centre crop in pixels")
    fusion: Literal["concat", "weighted_logits"] = Field(
        "concat",
        description="concat: a linear head over both standardised feature sets; weighted_logits: a learned "
        "softmax-weighted average of the image and text heads' logits",
    )
    head_init: Literal["linear_probe", "random"] = Field(
        "linear_probe",
        description="linear_probe: each modality head starts as logistic regression on its features and the "
        "fusion as their logits weighted by stacking on out-of-fold logits, then all are trained together; "
        "random: all start at random",
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="on the standardised features while training")
    label_smoothing: float = Field(0.0, ge=0, lt=1)


@register_task("multimodal_classification")
class MultimodalClassificationTask:
    DataConfig: ClassVar = MultimodalDataConfig
    ModelConfig: ClassVar = MultimodalModelConfig
    Input: ClassVar = MultimodalInput
    main_metric: ClassVar = "macro_f1"
    validation_metrics: ClassVar = METRIC_NAMES  # the fusion head's classification_metrics
    greater_is_better: ClassVar = True
    exports: ClassVar = False  # frozen encoders + fusion head: no ONNX or int8 export (docs/multimodal.md)

    @property
    def example_input(self) -> dict[str, str]:
        """A small grey PNG and a short text: what the server predicts once before it reports ready."""
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (128, 128, 128)).save(buffer, format="PNG")
        return {"image": base64.b64encode(buffer.getvalue()).decode("ascii"), "text": "warm-up"}

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        from modelyard.data import multimodal
        from modelyard.data.tabular import imbalance

        data: MultimodalDataConfig = config.data
        sources = {"train": data.train, "validation": data.validation, "test": data.test}
        splits, report = multimodal.load_splits(sources, _columns(data), data.split, data.format, data.max_rows)
        labels = sorted(splits["train"]["label"].unique())
        if len(labels) < 2:
            raise DataError(
                f"{data.train}: column '{data.label_column}' has only one class ({labels[0]!r})",
                "classification needs at least two classes",
            )
        warnings = []
        drop_unseen_labels(splits, labels, data, warnings)
        classes = imbalance(splits["train"]["label"])  # train's label counts, printed by validate as tables' are
        if classes["ratio"] > 10:
            counts, majority, minority = classes["counts"], next(iter(classes["counts"])), classes["minority"]
            warnings.append(
                f"imbalanced classes: '{majority}' has {counts[majority]} rows, '{minority}' {counts[minority]}; "
                "macro F1 is the fairer metric"
            )
        seen = set(zip(splits["train"]["sha256"], splits["train"]["text"], strict=True))
        leakage = {
            n: int(sum(pair in seen for pair in zip(splits[n]["sha256"], splits[n]["text"], strict=True)))
            for n in ("validation", "test")
        }
        for name, count in leakage.items():
            if count:
                warnings.append(f"leakage: {count} {name} rows repeat a training row's image and text")
        report.update(
            splits={n: len(f) for n, f in splits.items()},
            labels={n: f["label"].value_counts().sort_index().to_dict() for n, f in splits.items()},
            num_labels=len(labels),
            imbalance=classes,
            leakage=leakage,
            encoders=self._encoders(config),
        )
        return PreparedData(
            splits=splits, report=report, fingerprints=multimodal.fingerprints(splits), warnings=warnings
        )

    @staticmethod
    def _encoders(config: Config) -> dict[str, str]:
        """Both encoders resolved now, so `validate` refuses a missing one before any training."""
        options: MultimodalModelConfig = config.model
        if options.backbone != "auto":
            raise ModelNotFoundError(
                f"model.backbone '{options.backbone}' for multimodal_classification",
                f"use auto ({EFFICIENTNET} for images) and choose the text side with model.text_encoder",
            )
        catalog.locate(EFFICIENTNET)
        encoder_folder(options.text_encoder)
        return {"image": EFFICIENTNET, "text": options.text_encoder}

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        encoders = data.report["encoders"]
        return [("auto", f"frozen {encoders['image']} and {encoders['text']} features, late fusion")]

    def build(self, config: Config, data: PreparedData) -> MultimodalClassifierLearner:
        labels = sorted(data.splits["train"]["label"].unique())
        return MultimodalClassifierLearner.create(labels, config.model, data.splits["train"])

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        """The single-modality comparisons are part of every evaluation (`modalities`); TF-IDF on the text alone
        is the encoder-free reference."""
        from modelyard.learners.tfidf import tfidf_baseline

        labels = sorted(data.splits["train"]["label"].unique())
        evals = {n: data.splits[n] for n in ("validation", "test")}
        return {"tfidf_logreg_text": tfidf_baseline(data.splits["train"], evals, labels)}

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """`evaluate --data FILE`: every row must be usable as in training, but no class count is asked of the
        file (one class is a fine thing to score); rows of classes the model never learnt are dropped by the
        caller, and named."""
        from modelyard.data import multimodal

        rows, _ = multimodal.read_rows(path, _columns(config.data), config.data.format, None)
        if rows.empty:
            raise DataError(f"{path}: no rows", "the file needs a header and at least one row")
        return rows, []

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[dict[str, str]]:
        """`predict --input FILE`: the image and text columns of each row; relative image paths start at the
        file's folder, as in training data, and a row training would refuse (an empty cell, a missing or broken
        image) is named with its line."""
        from modelyard.data.multimodal import input_rows

        data: MultimodalDataConfig = config.data
        source = frame.attrs.get("source", "the input file")
        for key, column in (("image_column", data.image_column), ("text_column", data.text_column)):
            if column not in frame.columns:
                raise DataError(
                    f"{source}: no column '{column}' (data.{key}); it has: {', '.join(map(str, frame.columns))}"
                )
        return input_rows(frame, data.image_column, data.text_column, source)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> MultimodalClassifierLearner:
        return MultimodalClassifierLearner.load(directory, manifest["labels"])


def _columns(data: MultimodalDataConfig) -> dict[str, str]:
    """The file's image, text and label column names, by config key."""
    return {"image_column": data.image_column, "text_column": data.text_column, "label_column": data.label_column}
