"""Write scikit-learn's bundled 8x8 digits as PNG class folders (examples/data/digits/<digit>/<index>.png).

python examples/make_digits.py [OUTPUT_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

DEFAULT = Path(__file__).resolve().parent / "data" / "digits"


def write_digits(folder: Path = DEFAULT) -> Path:
    """Pixel values 0..16 scaled to 0..255, one greyscale PNG per image; returns the folder."""
    digits = load_digits()
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        out = folder / str(target) / f"{index:04d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((pixels * 255 / 16).round().astype(np.uint8)).save(out)
    return folder


if __name__ == "__main__":
    print(write_digits(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
