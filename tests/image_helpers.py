"""Small generated images for the image-classification tests (made here: nothing with a licence is copied)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def colour_squares(root: Path, per_class: int = 10, size: tuple[int, int] = (40, 48)) -> Path:
    """Two easily separated classes: noisy reddish and noisy bluish images, as PNG class folders."""
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (*size, 3), dtype=np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims huge dimensions: what a decompression bomb looks like before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def train_squares(folder: Path, epochs: int = 1):
    """A cnn-scratch bundle (one epoch unless told) on the images under `folder / "data"` (a real, tiny model)."""
    import yaml

    import modelyard

    config = {
        "name": "squares",
        "task": "image_classification",
        "data": {"train": "data", "split": {"validation": 0.2, "test": 0.2}},
        "model": {"backbone": "cnn-scratch", "image_size": 16},
        "train": {"epochs": epochs, "batch_size": 4},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    return modelyard.train(folder / "c.yaml", output=folder / "bundle", quiet=True)
