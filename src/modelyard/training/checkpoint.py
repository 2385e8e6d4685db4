"""Crash-safe checkpoints: model, optimiser, scheduler, RNG states and data position, swapped in atomically.

Tensors go to safetensors; optimiser/scheduler state dicts through `torch.save` and back with
`torch.load(weights_only=True)` (no arbitrary pickles); everything else is JSON.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modelyard.fsutil import atomic_write_json, recover_dir, replace_dir

LATEST = "latest"


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU tensors safetensors accepts: a tensor shared by several keys (tied weights) is copied per key."""
    out, seen = {}, set()
    for k, v in state.items():
        v = v.detach().contiguous().cpu()
        if v.data_ptr() in seen:
            v = v.clone()
        seen.add(v.data_ptr())
        out[k] = v
    return out


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """A module's weights as safetensors, written atomically (what every learner's `save` stores)."""
    from modelyard.fsutil import atomic_path

    with atomic_path(path) as tmp:
        save_file(_contiguous(getattr(module, "module", module).state_dict()), str(tmp))


def save_checkpoint(
    root: Path,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    progress: dict[str, Any],
    best_state: dict[str, torch.Tensor] | None,
) -> None:
    """Write everything to a staging folder, then swap it in as `root/latest` in one rename."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{progress['global_step']}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_file(_contiguous(model.state_dict()), str(staging / "model.safetensors"))
    if best_state is not None:
        save_file(_contiguous(best_state), str(staging / "best.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()},
        staging / "optimizer.pt",
    )
    atomic_write_json(staging / "progress.json", {**progress, "rng": _rng_state()})
    replace_dir(staging, root / LATEST)


def load_checkpoint(
    root: Path, model: torch.nn.Module, optimizer, scheduler
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None] | None:
    """Restore in place; returns (progress, best weights) or None when there is no complete checkpoint."""
    path = root / LATEST
    recover_dir(path)  # a kill during the last swap: finish it, so the newest complete checkpoint is found
    if not (path / "progress.json").exists():
        return None
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    state = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    progress = json.loads((path / "progress.json").read_text(encoding="utf-8"))
    _set_rng_state(progress.pop("rng"))
    best = load_file(str(path / "best.safetensors")) if (path / "best.safetensors").exists() else None
    return progress, best
