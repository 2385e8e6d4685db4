"""Small real audio for tests: the committed spoken-digits slice and files written with soundfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "data" / "spoken_digits" / "recordings"
DIGIT_PATTERN = r"^(?P<label>\d)_(?P<speaker>[a-z]+)_"


def tone(seconds: float = 0.5, rate: int = 16000, hz: float = 440.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16", fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype=subtype, format=fmt)
    return path


def mp4_header() -> bytes:
    """The first bytes of an MP4 video (an `ftyp` box with brand isom), enough to be recognised."""
    return b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 64
