"""Detection preprocessing: box-aware augmentation (torchvision v2 with tv_tensors.BoundingBoxes, so every crop,
zoom and flip moves the boxes with the pixels) and the dataset the shared loop batches."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from modelyard.data.images import load_image
from modelyard.models import detector, efficientnet


def eval_transform(size: int) -> v2.Compose:
    """The whole image stretched to size x size (boxes scale back by width/size, height/size), normalised."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(efficientnet.MEAN, efficientnet.STD),
        ]
    )


def train_transform(size: int) -> v2.Compose:
    """Colour jitter, zoom-out (small objects), random crops (large ones, partly cut), flips; then the
    evaluation resize. Boxes left under 4 pixels are dropped (SanitizeBoundingBoxes)."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomZoomOut(fill=127, side_range=(1.0, 2.0), p=0.3),
            v2.RandomApply([v2.RandomResizedCrop(size, scale=(0.4, 1.0), antialias=True)], p=0.5),
            v2.RandomHorizontalFlip(),
            v2.Resize((size, size), antialias=True),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=4),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(efficientnet.MEAN, efficientnet.STD),
        ]
    )


class DetectionDataset(torch.utils.data.Dataset):
    """Images decoded on access (JPEG at reduced scale), boxes rescaled with them, then transformed and encoded
    into CenterNet targets."""

    def __init__(self, frame: pd.DataFrame, label_index: dict[str, int], size: int, training: bool) -> None:
        self.rows = frame.to_dict("records")
        self.label_index, self.size = label_index, size
        self.transform = train_transform(size) if training else eval_transform(size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        image = load_image(row["path"], self.size)
        sx, sy = image.width / row["width"], image.height / row["height"]
        known = [
            (b, self.label_index[n]) for b, n in zip(row["boxes"], row["labels"], strict=True) if n in self.label_index
        ]
        boxes = torch.tensor([[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b, _ in known]).reshape(-1, 4)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(image.height, image.width)),
            "labels": torch.tensor([c for _, c in known], dtype=torch.long),
        }
        pixels, target = self.transform(image, target)
        encoded = detector.encode(
            target["boxes"].as_subclass(torch.Tensor), target["labels"], len(self.label_index), self.size
        )
        return {"pixels": pixels, **encoded}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack pixels and heatmaps; pad each image's objects to the batch's largest count (mask 0)."""
    n = max(len(x["index"]) for x in items)

    def pad(key: str) -> torch.Tensor:
        return torch.stack([torch.cat([x[key], x[key].new_zeros((n - len(x[key]), *x[key].shape[1:]))]) for x in items])

    return {
        "pixels": torch.stack([x["pixels"] for x in items]),  # (B, 3, S, S)
        "heatmap": torch.stack([x["heatmap"] for x in items]),  # (B, C, S/8, S/8)
        "index": pad("index"),  # (B, N)
        "box_target": pad("box_target"),  # (B, N, 4)
        "box_mask": pad("box_mask"),  # (B, N)
    }
