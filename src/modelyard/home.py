"""Where local state lives: MODELYARD_HOME (default ./.modelyard) holds tracking, registry, logs and caches.

MODELYARD_CACHE moves the caches alone (float copies of bundled models, converted once): several homes, such as
one per project or per test, can then share them instead of paying each conversion again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import FileLock

HF_WEIGHTS = ("config.json", "model.safetensors")  # the files a converted Hugging Face folder is complete with


def home() -> Path:
    """The state folder, created on first use."""
    path = Path(os.environ.get("MODELYARD_HOME", ".modelyard")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    shared = os.environ.get("MODELYARD_CACHE")
    path = (Path(shared).expanduser().resolve() if shared else home() / "cache") / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_lock(entry: Path) -> FileLock:
    """The lock beside a cache entry: processes that need the same entry at once (replicas starting together,
    the ranks of one run) wait for a single conversion instead of each running its own."""
    from filelock import FileLock

    return FileLock(str(entry.with_name(f"{entry.name}.lock")))


def convert_once(entry: Path, convert: Callable[[Path], None], markers: tuple[str, ...] = HF_WEIGHTS) -> Path:
    """The cache entry `entry`, written by `convert(entry)` unless its `markers` are there already; a process that
    arrives while another converts waits at the entry's lock and then reads its folder."""

    def complete() -> bool:
        return all((entry / marker).is_file() for marker in markers)

    if not complete():
        with cache_lock(entry):
            if not complete():
                convert(entry)
    return entry


def offline() -> None:
    """Never reach a model hub: everything loads from installed packages or local folders."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
