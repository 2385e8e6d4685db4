"""Which numeric precision to train and predict in: bf16 only where the hardware makes it fast."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from modelyard.errors import UserError

DEVICE_ENV = "MODELYARD_DEVICE"  # auto (CUDA when present) | cpu | cuda


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); without them bf16 is slower."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve(precision: str, device: torch.device | None = None) -> str:
    """`auto` becomes bf16 on CUDA with bf16 support or on a CPU with fast bf16, else fp32."""
    if precision != "auto":
        return precision
    if device is not None and device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    """An autocast context for bf16, a no-op context for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def device() -> torch.device:
    """Where every task trains and serves: CUDA when a GPU is visible, else the CPU; MODELYARD_DEVICE=cpu|cuda
    decides instead (the one place that chooses, so training, the server and the launcher agree)."""
    wanted = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "cpu", "cuda"):
        raise UserError(f"{DEVICE_ENV}={wanted!r} is not a device", "set it to auto, cpu or cuda, or unset it")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{DEVICE_ENV}=cuda but no CUDA device is visible", f"unset {DEVICE_ENV} to use the CPU")
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())
