"""Object detection: boxes from Pascal-VOC XML, COCO JSON or YOLO txt; CenterNet on EfficientNet-Lite0.

No package on the index ships detector weights under a permissive licence that loads offline (searched:
yolo, ssd, detr, centernet, fcos, nanodet), so the detector head is trained here on the bundled ImageNet trunk.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from PIL import Image
from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.data import detection_readers as readers
from modelyard.data import images
from modelyard.data.splits import fingerprint, make_splits
from modelyard.errors import DataError
from modelyard.learners.detection import DetectorLearner, OnnxDetectorLearner
from modelyard.models import catalog
from modelyard.protocols import PreparedData
from modelyard.tasks import register_task
from modelyard.tasks.image_classification import ImageInput

if TYPE_CHECKING:
    import pandas as pd

IMAGE_COLUMNS = ("image", "path")  # predict --input: the column of image paths, by either name
REASON = "no offline detector weights with a permissive licence: CenterNet head on the ImageNet trunk"
STARTER = """\
# modelyard config: object detection
name: my-detector
task: object_detection
data:
  train: data/annotations          # a folder of Pascal-VOC .xml files, a COCO .json file, or a YOLO folder
                                   #   (images/ + labels/ + classes.txt); or a .csv/.txt listing the images of
                                   #   `annotations` that form this split
  annotations: null                # the annotation source split lists pick from
  images: null                     # the image folder; default: images/ beside the annotations
  classes: null                    # the expected classes: any other is an error (YOLO: the names of 0, 1, ...)
  validation: null                 # carved from train when absent (so is test)
  test: null
model:
  trunk: imagenet                  # imagenet (bundled EfficientNet-Lite0 weights) | random
  image_size: 320                  # images are resized to this square
  min_score: 0.3                   # predict/serve return boxes at least this confident
train:
  epochs: null                     # null = the detector's default (25: 15 min on 2 CPU cores at 320 px)
  batch_size: null
  learning_rate: null
"""


class DetectionDataConfig(DataConfig):
    annotations: str | None = Field(None, description="annotation source that .csv/.txt split lists pick from")
    images: str | None = Field(None, description="image folder; default: images/ beside the annotations")
    classes: list[str] | None = Field(None, description="expected class names; others are errors (YOLO: 0, 1, ...)")


class DetectionModelConfig(ModelConfig):
    backbone: str = Field("auto", description="auto = efficientnet-lite0-centernet (the only detector)")
    trunk: Literal["imagenet", "random"] = Field("imagenet", description="start the trunk from ImageNet or at random")
    image_size: int = Field(320, ge=64, le=1024, multiple_of=32, description="square input side in pixels")
    head_width: int = Field(64, ge=16, le=256, description="channels of the neck and heads")
    trunk_lr_ratio: float = Field(0.3, gt=0, le=1, description="a pretrained trunk learns this many times slower")
    nms_iou: float = Field(0.5, gt=0, le=1, description="boxes of one class overlapping more than this are merged")
    min_score: float = Field(0.3, ge=0, le=1, description="predict/serve return boxes at least this confident")


@register_task("object_detection")
class ObjectDetectionTask:
    DataConfig: ClassVar = DetectionDataConfig
    ModelConfig: ClassVar = DetectionModelConfig
    Input: ClassVar = ImageInput
    main_metric: ClassVar = "map50"
    validation_metrics: ClassVar = ("map50", "map50_95")  # detection_metrics
    greater_is_better: ClassVar = True

    @property
    def example_input(self) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def starter_config(self) -> str:
        return STARTER

    def _read(self, location: str, data: DetectionDataConfig, name: str) -> tuple[list, Path]:
        path = Path(location)
        folder = Path(data.images) if data.images else None
        if path.is_file() and path.suffix.lower() in (".csv", ".txt"):
            if not data.annotations:
                raise DataError(f"data.{name} {path} lists images", "set data.annotations to their annotation source")
            source = Path(data.annotations)
            return readers.pick(readers.read_annotations(source, folder, data.classes), path), source
        return readers.read_annotations(path, folder, data.classes), path if path.is_dir() else path.parent

    def prepare(self, config: Config) -> PreparedData:
        data: DetectionDataConfig = config.data
        frames, warnings = {}, []
        for name in ("train", "validation", "test"):
            location = getattr(data, name)
            if location:
                items, root = self._read(location, data, name)
                items, notes = readers.check_boxes(items, data.classes, name)
                warnings += notes
                frames[name] = readers.to_frame(items, root)
                if data.max_rows:
                    frames[name] = frames[name].head(data.max_rows)
        split = data.split.model_copy(update={"stratify": False})
        splits, notes = make_splits(frames["train"], frames.get("validation"), frames.get("test"), split, None)
        labels = sorted({n for names in splits["train"]["labels"] for n in names})
        if not labels:
            raise DataError(f"{data.train}: no boxes in the training images", "annotate at least one object")
        for name in ("validation", "test"):
            unseen = sorted({n for names in splits[name]["labels"] for n in names} - set(labels))
            if unseen:
                warnings.append(f"{name}: classes never seen in train are not scored: {', '.join(unseen)}")
        report = {
            "splits": {
                n: {
                    "images": len(f),
                    "boxes": int(f["labels"].map(len).sum()),
                    "classes": dict(sorted(_counts(f["labels"]).items())),
                }
                for n, f in splits.items()
            },
            "split_notes": notes,
            "num_labels": len(labels),
            "backbone": {"name": "efficientnet-lite0-centernet", "trunk": config.model.trunk, "reason": REASON},
        }
        if config.model.trunk == "imagenet":
            catalog.locate("efficientnet-lite0")
        prints = {
            n: fingerprint(f.sort_values("file"), ["file", "sha256", "boxes", "labels"]) for n, f in splits.items()
        }
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """`evaluate --data`: the folder's images scored as they are. Images without boxes are scored (false alarms
        count); boxes of classes the model never learned are dropped and named, as `train` does for its test split."""
        location = Path(path)
        items, notes = readers.check_boxes(readers.read_annotations(location, None, None), None, path)
        unseen = sorted({n for item in items for n in item.labels} - set(labels))
        if unseen:
            dropped = sum(n in unseen for item in items for n in item.labels)
            for item in items:
                keep = [i for i, n in enumerate(item.labels) if n in labels]
                item.boxes, item.labels = [item.boxes[i] for i in keep], [item.labels[i] for i in keep]
            notes.append(
                f"{path}: {dropped} boxes of classes the model never learned are not scored: {', '.join(unseen)}"
            )
        if not any(item.labels for item in items):
            notes.append(f"{path}: no boxes to find, so mAP is 0; the confusion's background row counts false alarms")
        return readers.to_frame(items, location if location.is_dir() else location.parent), notes

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[str]:
        """`predict --input FILE`: the image paths of its `image` (or `path`) column, the relative ones starting at
        the file's folder (a detector's training data names images in annotations, not in a column)."""
        column = next((c for c in IMAGE_COLUMNS if c in frame.columns), None)
        if column is None:
            raise DataError(
                f"{frame.attrs.get('source', 'the input')}: no column 'image' or 'path'; it has: "
                f"{', '.join(map(str, frame.columns))}",
                "name the column of image paths 'image'",
            )
        return images.paths_in(frame, column)

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        return [("efficientnet-lite0-centernet", data.report["backbone"]["reason"])]

    def build(self, config: Config, data: PreparedData) -> DetectorLearner:
        labels = sorted({n for names in data.splits["train"]["labels"] for n in names})
        return DetectorLearner.create(labels, config.model)

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        """None: no simple detector to compare with; the benchmark compares the ImageNet and a random trunk."""
        return {}

    def feedback_label(self, config: Config, label: Any) -> Any:
        """Feedback is a true label, scored right or wrong; a set of boxes has none, so it is refused where it
        arrives (`/v1/feedback`: 422, `feedback import`) rather than stored where nothing scores or learns from it."""
        raise DataError(
            "this model's answers are not labels (boxes), so feedback cannot score them",
            "score the detector on newly annotated images with `modelyard evaluate BUNDLE --data FOLDER`",
        )

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> DetectorLearner:
        runtime = OnnxDetectorLearner if manifest.get("runtime") == "onnxruntime" else DetectorLearner
        return runtime.load(directory, config.model, manifest["labels"])


def _counts(column: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for names in column:
        for n in names:
            counts[n] = counts.get(n, 0) + 1
    return counts
