"""Digit strings made from the committed Free Spoken Digit Dataset slice (real voices, CC BY-SA 4.0) and small
real speech bundles, shared by the speech recognition tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECORDINGS = EXAMPLES / "data" / "spoken_digits" / "recordings"


def generator():
    """examples/digit_strings.py, which stands outside the package on purpose (usable without modelyard)."""
    spec = importlib.util.spec_from_file_location("digit_strings", EXAMPLES / "digit_strings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digit_strings(folder: Path) -> dict[str, Path]:
    """Train/validation strings of george and jackson, test strings of theo (a held-out voice)."""
    make = generator().generate
    return {
        "train": make(RECORDINGS, folder / "train", 24, ["george", "jackson"], seed=1),
        "validation": make(RECORDINGS, folder / "validation", 6, ["george", "jackson"], seed=2),
        "test": make(RECORDINGS, folder / "test", 6, ["theo"], seed=3),
    }


def speech_config(folder: Path, manifests: dict[str, Path], backbone: str = "ctc-lstm", **model) -> Path:
    config = {
        "name": f"test-{backbone}".replace(".", "-"),
        "task": "speech_recognition",
        "data": {k: str(v) for k, v in manifests.items()},
        "model": {"backbone": backbone, "hidden_size": 32, "conv_channels": 32, "layers": 1, "baseline": None} | model,
        "train": {"max_steps": 3, "batch_size": 8},
    }
    path = folder / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
