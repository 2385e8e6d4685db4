"""Where local state lives: MODELYARD_HOME (default ./.modelyard) holds tracking, registry, logs and caches."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The state folder, created on first use."""
    path = Path(os.environ.get("MODELYARD_HOME", ".modelyard")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    path = home() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> None:
    """Never reach a model hub: everything loads from installed packages or local folders."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
