"""Image preprocessing: the transforms a bundle stores (training augmentation, evaluation crop) and the dataset
the shared loop batches."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torchvision.transforms import v2

from modelyard.data.images import EXTENSIONS, decode_image, load_image, to_rgb
from modelyard.data.payloads import payload_bytes
from modelyard.errors import DataError
from modelyard.models import cnn, efficientnet

EFFICIENTNET = "efficientnet-lite0"
FIXRES_RATIO = 8 / 7  # evaluation crop / training crop for photos trained on random resized crops
MAX_ASPECT = 4.0  # longer side / shorter side kept before resizing: the centre crop never reaches further


def bounded_aspect(image: torch.Tensor) -> torch.Tensor:
    """The centre of a strip-like image, at most MAX_ASPECT times longer than wide, before its short side is
    resized: what the square centre crop uses is unchanged, but a 20000x1 strip no longer becomes a
    292x5,840,000 tensor (gigabytes) on its way there."""
    height, width = image.shape[-2:]
    longest = math.ceil(min(height, width) * MAX_ASPECT)
    if max(height, width) <= longest:
        return image
    return v2.functional.center_crop(image, [min(height, longest), min(width, longest)])


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to `resize`, centre-crop `image_size`, scale to 0..1, normalise (mean, std).

    `augment` picks the training-time augmentation: "photo" (random resized crop, flip, colour jitter),
    "light" (small shifts/rotations, no flip: digits and text must not be mirrored) or "none".
    `train_size` is the training crop when it differs from the evaluation crop `image_size` (FixRes).
    """

    image_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: Literal["photo", "light", "none"] = "photo"
    train_size: int | None = None

    def eval_transform(self) -> v2.Compose:
        return v2.Compose(
            [
                v2.ToImage(),
                bounded_aspect,
                v2.Resize(self.resize, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
                v2.CenterCrop(self.image_size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    def train_transform(self) -> v2.Compose:
        if self.augment == "none":
            return self.eval_transform()
        size = self.train_size or self.image_size
        if self.augment == "light":
            geometry = [
                bounded_aspect,
                v2.Resize(round(self.resize * size / self.image_size), antialias=True),
                v2.CenterCrop(size),
                v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
            ]
        else:
            geometry = [
                v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
            ]
        return v2.Compose(
            [
                v2.ToImage(),
                *geometry,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "interpolation": "bilinear", "crop": "center", "scale": "0..1"}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Preprocessing:
        return cls(
            spec["image_size"],
            spec["resize"],
            tuple(spec["mean"]),
            tuple(spec["std"]),
            spec["augment"],
            spec.get("train_size"),
        )


def preprocessing_for(backbone: str, image_size: int, augment: str, eval_size: int | None = None) -> Preprocessing:
    """Photos are resized to 1/0.875 of the crop (ImageNet practice); small images are used whole.

    Random-resized-crop training shows objects larger than a centre crop of the same size does, so photos are
    evaluated at `eval_size` (default 8/7 of the training crop: 256 for 224), which restores their apparent size
    (FixRes, Touvron et al. 2019).
    """
    if backbone == EFFICIENTNET:
        if eval_size is None:
            eval_size = round(image_size * FIXRES_RATIO) if augment == "photo" else image_size
        train_size = image_size if eval_size != image_size else None
        return Preprocessing(
            eval_size, round(eval_size / 0.875), efficientnet.MEAN, efficientnet.STD, augment, train_size
        )
    return Preprocessing(image_size, image_size, cnn.MEAN, cnn.STD, augment)


def is_file_path(text: str) -> bool:
    """A string names an existing file (a long base64 string is not a path, and must not crash the check)."""
    try:
        return len(text) < 4096 and Path(text).is_file()
    except OSError:
        return False


def request_image(item: Any) -> Image.Image:
    """A request's image (PIL image, base64 string, data: URL or raw bytes) -> RGB; ValueError when it is not one."""
    if isinstance(item, Image.Image):
        return to_rgb(item)
    try:
        return decode_image(payload_bytes(item, "image"))
    except ValueError as err:
        raise ValueError(f"not a usable image: {err}") from None


def input_image(item: Any) -> Image.Image:
    """Python API / CLI inputs: a file path (str or Path), a PIL image, bytes or base64 -> RGB; DataError naming
    the file when it is none of them."""
    if isinstance(item, Path) or (isinstance(item, str) and is_file_path(item)):
        try:
            return decode_image(Path(item).read_bytes())
        except (ValueError, OSError) as err:
            raise DataError(f"{item}: cannot use this image ({err})") from None
    try:
        return request_image(item)
    except ValueError as err:
        if isinstance(item, str) and _names_a_path(item):  # a typo in a path, not a broken base64 payload
            what = "is a folder, not an image file" if Path(item).is_dir() else "no such image file"
            raise DataError(f"{item}: {what}") from None
        raise DataError(f"input is neither an image file nor a base64 image: {err}") from None


def _names_a_path(text: str) -> bool:
    """A string that reads as a path rather than base64: an image file name, or a folder (base64 has no dots,
    and a JPEG's base64 even starts with '/', so a slash proves nothing)."""
    try:
        return len(text) < 4096 and (Path(text).suffix.lower() in EXTENSIONS or Path(text).is_dir())
    except OSError:
        return False


class ImageDataset(torch.utils.data.Dataset):
    """Images decoded on access (JPEG at reduced scale when much larger than needed), then transformed."""

    def __init__(self, paths: list[str], labels: list[int], transform: v2.Compose, size_hint: int | None) -> None:
        self.paths, self.labels, self.transform, self.size_hint = paths, labels, transform, size_hint

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"pixels": self.transform(load_image(self.paths[i], self.size_hint)), "labels": self.labels[i]}
