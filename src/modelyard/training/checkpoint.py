"""Crash-safe checkpoints: model, optimiser, scheduler, RNG states and data position, swapped in atomically.

Tensors go to safetensors; optimiser/scheduler state dicts through `torch.save` and back with
`torch.load(weights_only=True)` (no arbitrary pickles); everything else is JSON.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modelyard.config import Config
from modelyard.errors import ConfigError, UserError
from modelyard.fsutil import atomic_write_json, recover_dir, replace_dir

LATEST = "latest"
# what may differ on --resume: when checkpoints are written and the budget for trying candidates; the steps taken
# and the weights they reach stay those of the run that was started
RESUMABLE_CHANGES = frozenset({"train.checkpoint_every", "train.time_limit_s"})
UNSET = "unset"


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


def started_with(config: Config, fingerprints: dict[str, Any]) -> dict[str, Any]:
    """What a run's checkpoints record they were started with, for `--resume` to compare: the task, the model,
    data and train sections (as resolved) and the data's fingerprints, as JSON."""
    sections = config.model_dump(mode="json", include={"task", "model", "data", "train"})
    return json.loads(json.dumps({"config": sections, "data": fingerprints}, default=str))


def has_checkpoint(root: Path) -> bool:
    """Whether `root` holds a complete checkpoint to resume (a run killed before its first one holds none)."""
    recover_dir(root / LATEST)
    return (root / LATEST / "progress.json").is_file()


def load_checkpoint(
    root: Path, model: torch.nn.Module, optimizer, scheduler, run: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None] | None:
    """Restore in place; returns (progress, best weights) or None when there is no complete checkpoint. `run`
    (`started_with`) must match what the checkpoint was started with: another config or data is refused before
    anything is loaded, as is a checkpoint file that cannot be read."""
    path = root / LATEST
    if not has_checkpoint(root):  # also finishes a swap a kill interrupted, so the newest checkpoint is found
        return None
    progress = _read(path / "progress.json", lambda f: json.loads(f.read_text(encoding="utf-8")))
    if run is not None and "run" in progress:  # checkpoints written before runs were recorded cannot be compared
        _refuse_changed_run(path, progress.pop("run"), run)
    _read(path / "model.safetensors", lambda f: model.load_state_dict(load_file(str(f))))
    state = _read(path / "optimizer.pt", lambda f: torch.load(f, map_location="cpu", weights_only=True))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    _set_rng_state(progress.pop("rng"))
    best = path / "best.safetensors"
    return progress, _read(best, lambda f: load_file(str(f))) if best.exists() else None


def _read(file: Path, read: Callable[[Path], Any]) -> Any:
    """`read(file)`, any failure (a file cut short by a full disk, edited, from another model) one clear error."""
    try:
        return read(file)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{file}: unreadable checkpoint ({reason[:300]})",
            f"delete {file.parents[1]} to start over, or train without --resume",
        ) from None


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _refuse_changed_run(path: Path, before: dict[str, Any], now: dict[str, Any]) -> None:
    """A checkpoint continued under another config or data would mix two runs (another LR schedule, epochs
    counted against another total) or fail to load (another model size): name every key that changed."""
    old, new = _flat(before), _flat(now)
    keys = sorted(k for k in old.keys() | new.keys() if k.removeprefix("config.") not in RESUMABLE_CHANGES)
    changed = [k for k in keys if old.get(k, UNSET) != new.get(k, UNSET)]
    if not changed:
        return
    shown = ", ".join(f"{_name(k)} ({_short(old.get(k, UNSET))} -> {_short(new.get(k, UNSET))})" for k in changed)
    raise ConfigError(
        f"{path}: --resume continues a run with the config and data it was started with; changed since: {shown}",
        f"resume with the settings it started with (only {', '.join(sorted(RESUMABLE_CHANGES))} may change), or "
        f"start over: delete {path.parent} or train without --resume",
    )


def _name(key: str) -> str:
    return key.removeprefix("config.") if key.startswith("config.") else f"the data's {key.removeprefix('data.')}"


def _short(value: Any) -> str:
    if isinstance(value, str) and value is not UNSET:  # a digest or path: cut inside its quotes, which stay closed
        return json.dumps(value if len(value) <= 38 else value[:35] + "...")
    text = value if value is UNSET else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
