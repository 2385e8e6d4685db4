"""`precision.device()`: the one place that says where models train and serve."""

from __future__ import annotations

import pytest
import torch

from modelyard.errors import UserError
from modelyard.precision import device


def test_auto_takes_cuda_only_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.delenv("MODELYARD_DEVICE", raising=False)
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_can_be_forced(monkeypatch):
    monkeypatch.setenv("MODELYARD_DEVICE", "cpu")
    assert device() == torch.device("cpu")


def test_an_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MODELYARD_DEVICE", "tpu")
    with pytest.raises(UserError, match="MODELYARD_DEVICE='tpu' is not a device"):
        device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MODELYARD_DEVICE", "cuda")
    with pytest.raises(UserError, match="no CUDA device is visible"):
        device()
