"""Processes that need the same converted model at once (replicas starting together, the ranks of one run, test
workers) convert it once: the second waits at the cache entry's lock and then reads the first one's folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from modelyard.models import e5_import


def test_two_concurrent_loads_convert_once_and_both_get_the_whole_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELYARD_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "model.image"
    image.write_bytes(b"weights")
    conversions: list[Path] = []

    def slow_convert(path: Path, target: Path) -> None:
        conversions.append(target)
        time.sleep(0.3)  # long enough that the second load arrives mid-conversion
        target.mkdir()
        (target / "config.json").write_text("{}", encoding="utf-8")
        (target / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(e5_import, "_convert", slow_convert)
    folders: list[Path] = []
    loads = [threading.Thread(target=lambda: folders.append(e5_import.cached_folder(image))) for _ in range(2)]
    for load in loads:
        load.start()
    for load in loads:
        load.join()
    assert len(conversions) == 1
    assert folders == [conversions[0]] * 2 and (folders[0] / "config.json").is_file()
