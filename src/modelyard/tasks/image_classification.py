"""Image classification: photos with a pretrained EfficientNet-Lite0, tiny or grey images with cnn-scratch."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from PIL import Image
from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.data import images
from modelyard.errors import DataError, ModelNotFoundError
from modelyard.learners.frozen_features import frozen_features_baseline
from modelyard.learners.image import CNN_SCRATCH, EFFICIENTNET, ImageClassifierLearner, OnnxImageClassifierLearner
from modelyard.learners.image_inputs import preprocessing_for
from modelyard.metrics.classification import METRIC_NAMES
from modelyard.models import catalog
from modelyard.protocols import PreparedData
from modelyard.tasks import register_task
from modelyard.tasks._labels import drop_unseen_labels

TINY_SIDE = 32  # images whose median short side is below this are not photos for an ImageNet backbone
GREY_SHARE = 0.8

STARTER = """\
# modelyard config: image classification
name: my-image-classifier           # names the run and the registered model
task: image_classification
data:
  train: data/images                # a folder of class subfolders (or with train/ val/ test/ inside it),
                                    #   or a .csv/.jsonl with an image path column and a label column
  validation: null                  # optional; carved from train when absent (so is test)
  test: null
  split: {validation: 0.1, test: 0.1, seed: 42, stratify: true}
  image_column: image               # CSV/JSONL only: paths relative to that file's folder
  label_column: label
model:
  backbone: auto                    # auto | efficientnet-lite0 (ImageNet-pretrained) | cnn-scratch
  image_size: null                  # null = 224 for efficientnet-lite0, fitted to the data for cnn-scratch
  augment: auto                     # auto | photo | light | none
  head_init: linear_probe           # efficientnet-lite0: the head starts as logistic regression on frozen features
  wise_ft: 0.5                      #   ...and the kept weights are halfway between that start and the fine-tuned ones
  eval_size: null                   #   ...evaluated at 8/7 of image_size (256 for 224: random crops enlarge objects)
train:
  epochs: null                      # null = the backbone's tuned default (printed when training starts)
  batch_size: null
  learning_rate: null               # the backbone's rate (a random head learns head_lr_multiplier times faster)
  early_stopping: {patience: 3, metric: accuracy}
"""


class ImageDataConfig(DataConfig):
    image_column: str = Field("image", description="CSV/JSONL column of image paths (relative to the file)")
    label_column: str = Field("label", description="CSV/JSONL column with the class")


class ImageModelConfig(ModelConfig):
    backbone: str = Field("auto", description=f"auto, {EFFICIENTNET} (ImageNet-pretrained) or {CNN_SCRATCH}")
    image_size: int | None = Field(None, ge=8, le=512, description="training crop side in pixels; null = automatic")
    eval_size: int | None = Field(
        None,
        ge=8,
        le=1024,
        description="efficientnet-lite0: the side evaluation, prediction and serving crop to; null = 8/7 of "
        "image_size (256 for 224) under photo augmentation, which sees objects larger (FixRes), else image_size",
    )
    augment: Literal["auto", "photo", "light", "none"] = Field(
        "auto", description="photo: random crops, flips, colour jitter; light: small shifts, no flips"
    )
    dropout: float = Field(0.2, ge=0, lt=1)
    head_init: Literal["linear_probe", "random"] = Field(
        "linear_probe",
        description="efficientnet-lite0: start the head from logistic regression on the frozen trunk's features "
        "(LP-FT), then fine-tune everything",
    )
    wise_ft: float = Field(
        0.5,
        ge=0,
        le=1,
        description="efficientnet-lite0 with head_init linear_probe: keep (1 - a) x the starting weights + a x the "
        "fine-tuned ones (WiSE-FT weight-space ensemble); 1 = the fine-tuned weights alone",
    )
    layer_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="efficientnet-lite0: each stage below the head learns this many times slower (layer-wise LR "
        "decay; the stem at layer_decay^9); 1 = one rate for the whole trunk",
    )
    head_lr_multiplier: float = Field(10.0, gt=0, description="a random head learns this many times faster")
    frozen_batchnorm: bool = Field(
        True, description="efficientnet-lite0: keep BatchNorm on its ImageNet statistics while fine-tuning"
    )
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    widths: list[int] = Field([32, 64, 128], min_length=1, description="cnn-scratch channels per stage")
    channels_last: bool = Field(True, description="NHWC memory layout (faster convolutions on CPU)")


ImageInput = Annotated[
    str,
    Field(
        description="an image file's bytes, base64-encoded (a data: URL works too)",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": "image/*"},
    ),
]


@register_task("image_classification")
class ImageClassificationTask:
    DataConfig: ClassVar = ImageDataConfig
    ModelConfig: ClassVar = ImageModelConfig
    Input: ClassVar = ImageInput
    main_metric: ClassVar = "accuracy"
    validation_metrics: ClassVar = METRIC_NAMES
    greater_is_better: ClassVar = True

    @property
    def example_input(self) -> str:
        """A small grey PNG, base64: what the server predicts once before it reports ready."""
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (128, 128, 128)).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        data: ImageDataConfig = config.data
        splits, report, warnings = images.load_splits(
            data.train,
            data.validation,
            data.test,
            data.split,
            data.image_column,
            data.label_column,
            data.format,
            data.max_rows,
        )
        labels = sorted(splits["train"]["label"].unique())
        if len(labels) < 2:
            skipped, named = sum(report["images"]["skipped"].values()), report["images"]["skipped_files"]
            where = f" has usable images; {skipped} files were skipped, e.g. {named[0]}" if skipped else ""
            raise DataError(
                f"{data.train}: only one class ({labels[0]!r}){where}",
                "classification needs at least two classes (one subfolder each)",
            )
        drop_unseen_labels(splits, labels, data, warnings)
        counts = splits["train"]["label"].value_counts()
        if counts.max() / counts.min() > 10:
            warnings.append(
                f"imbalanced classes: '{counts.idxmax()}' has {counts.max()} images, '{counts.idxmin()}' {counts.min()}"
            )
        seen = set(splits["train"]["sha256"])
        leakage = {n: int(splits[n]["sha256"].isin(seen).sum()) for n in ("validation", "test")}
        for name, count in leakage.items():
            if count:
                warnings.append(f"leakage: {count} {name} images are byte-identical to training images")
        report.update(num_labels=len(labels), leakage=leakage, backbone=self._choose(config, report["sizes"]))
        return PreparedData(splits=splits, report=report, fingerprints=images.fingerprints(splits), warnings=warnings)

    def _choose(self, config: Config, sizes: dict[str, Any]) -> dict[str, Any]:
        """Backbone, input size and augmentation, each with the reason (shown by `validate`)."""
        options: ImageModelConfig = config.model
        side, grey = sizes.get("median_short_side", 224), sizes.get("grey_fraction", 0.0)
        backbone, why = options.backbone, "named in the config"
        if backbone == "auto":
            if side < TINY_SIDE:
                backbone, why = (
                    CNN_SCRATCH,
                    f"tiny images (median short side {side} px), unlike ImageNet photos",
                )
            elif grey >= GREY_SHARE:
                backbone, why = CNN_SCRATCH, f"{grey:.0%} of the images are greyscale, unlike ImageNet photos"
            elif not catalog.installed().get(EFFICIENTNET, False):
                backbone, why = CNN_SCRATCH, f"photos, but {EFFICIENTNET} is not installed"
            else:
                backbone, why = (
                    EFFICIENTNET,
                    f"colour photos ({side} px median short side): ImageNet features",
                )
        if backbone not in (EFFICIENTNET, CNN_SCRATCH):
            raise ModelNotFoundError(
                f"unknown backbone '{backbone}' for image_classification",
                f"use auto, {EFFICIENTNET} or {CNN_SCRATCH}",
            )
        if backbone == EFFICIENTNET:
            catalog.locate(EFFICIENTNET)  # named but not installed: refused here (so by `validate`), not mid-build
        size = options.image_size or (224 if backbone == EFFICIENTNET else int(min(128, max(16, side))))
        augment = options.augment
        if augment == "auto":
            augment = "photo" if backbone == EFFICIENTNET else "light"
        return {"name": backbone, "reason": why, "image_size": size, "augment": augment}

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        choice = data.report["backbone"]
        return [(choice["name"], choice["reason"])]

    def build(self, config: Config, data: PreparedData) -> ImageClassifierLearner:
        choice = self._choose(config, data.report["sizes"])
        labels = sorted(data.splits["train"]["label"].unique())
        learner = ImageClassifierLearner.create(
            choice["name"], labels, choice["image_size"], choice["augment"], config.model
        )
        if learner.probe_head:
            learner.start_head_from_probe(data.splits["train"])
        return learner

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        """Frozen ImageNet features + logistic regression (skipped when EfficientNet-Lite0 is missing)."""
        if not catalog.installed().get(EFFICIENTNET, False):
            return {}
        labels = sorted(data.splits["train"]["label"].unique())
        choice = data.report["backbone"]
        if choice["name"] == EFFICIENTNET:  # the fine-tuned model's own evaluation transform: a like-for-like test
            prep = preprocessing_for(EFFICIENTNET, choice["image_size"], choice["augment"], config.model.eval_size)
        else:
            prep = preprocessing_for(EFFICIENTNET, 96, "none")  # tiny images: 96 px is plenty
        return {"frozen_features": frozen_features_baseline(data.splits, labels, prep)}

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """`evaluate --data`: every usable image of a labelled folder or file (one class is enough here), and a
        note naming the skipped files."""
        data: ImageDataConfig = config.data
        return images.read_labelled(path, data.image_column, data.label_column, data.format)

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[str]:
        column = config.data.image_column
        if column not in frame.columns:
            raise DataError(
                f"no column '{column}' (data.image_column) in the input file; it has: "
                f"{', '.join(map(str, frame.columns))}"
            )
        return images.paths_in(frame, column)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> ImageClassifierLearner:
        onnx = manifest.get("runtime") == "onnxruntime"
        runtime = OnnxImageClassifierLearner if onnx else ImageClassifierLearner
        return runtime.load(directory, config.model, manifest["labels"])
