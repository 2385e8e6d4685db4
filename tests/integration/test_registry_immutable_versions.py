"""A registered version is immutable: `models:/NAME/N` keeps meaning the bundle registered as N even when another
run writes into its folder, and `train` into a folder that holds a registered version says so."""

from __future__ import annotations

import json

import pytest
from conftest import write_config

import modelyard
from modelyard.tracking import registry

pytestmark = pytest.mark.slow


@pytest.fixture
def tracked(monkeypatch):
    monkeypatch.setenv("MODELYARD_TRACKING", "on")


def _bundle_id(path) -> str:
    return json.loads((path / "modelyard.json").read_text())["bundle_id"]


def test_a_version_whose_folder_was_trained_over_resolves_to_its_own_logged_bundle(banking_slice, tmp_path, tracked):
    config = write_config(banking_slice, "tfidf-linear")
    first = modelyard.train(config, output=tmp_path / "b", quiet=True)
    registered = _bundle_id(first.path)
    # a run that does not track (the store was down, tracking switched off) still writes into the same folder
    modelyard.train(config, output=tmp_path / "b", overrides=["data.split.seed=5"], quiet=True, track=False)
    assert _bundle_id(tmp_path / "b") != registered
    path, version = registry.resolve_model_uri(f"models:/{first.name}/{first.version}")
    assert version == first.version and path != (tmp_path / "b").resolve()
    assert _bundle_id(path) == registered


def test_training_into_a_registered_versions_folder_warns_and_the_version_keeps_its_bundle(
    banking_slice, tmp_path, tracked
):
    config = write_config(banking_slice, "tfidf-linear")
    first = modelyard.train(config, output=tmp_path / "b", quiet=True)
    before = _bundle_id(first.path)
    warnings: list[str] = []
    second = modelyard.train(
        config, output=tmp_path / "b", overrides=["data.split.seed=5"], quiet=True, on_warning=warnings.append
    )
    said = f"model 'test-tfidf-linear' version {first.version}; this run replaces the folder"
    assert any(said in w for w in warnings)
    path, _ = registry.resolve_model_uri(f"models:/{first.name}/{first.version}")
    assert _bundle_id(path) == before and _bundle_id(second.path) != before
    assert sorted(v.version for v in registry.describe(first.name).versions) == [first.version, second.version]
