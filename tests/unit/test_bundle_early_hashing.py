"""`bundle.hash_early` hashes a bundle while the server imports its libraries, and `verify` reuses a digest while
the file is unchanged; `verify` must stay as strict."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modelyard import bundle
from modelyard.errors import BundleError, UserError


def _bundle(tmp_path: Path) -> Path:
    def write(staging: Path) -> dict:
        (staging / "model.safetensors").write_bytes(b"weights " * 1000)
        (staging / "config.yaml").write_text("name: tiny\n")
        return {}

    path = bundle.write_bundle(tmp_path / "tiny", write, {"task": "text_classification", "name": "tiny"})
    time.sleep(bundle.RACY_NS / 1e9 + 0.05)  # older than the racy window, as a bundle being served is
    return path


def _hashed_early(path: Path) -> None:
    bundle.hash_early(path)
    bundle._early[path.resolve()].result()


def _count_hashing(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = bundle.sha256_file

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(bundle, "sha256_file", counting)
    return calls


def test_a_file_changed_after_early_hashing_is_still_refused(tmp_path):
    path = _bundle(tmp_path)
    _hashed_early(path)
    weights = path / "model.safetensors"
    weights.write_bytes(b"WEIGHTS " * 1000)  # same size, new content
    with pytest.raises(BundleError, match=r"checksum mismatch for model\.safetensors"):
        bundle.verify(path)


def test_verify_uses_the_early_digests_of_unchanged_files(tmp_path, monkeypatch):
    path = _bundle(tmp_path)
    _hashed_early(path)
    calls = _count_hashing(monkeypatch)
    assert bundle.verify(path)["name"] == "tiny"
    assert calls == []


def test_files_written_just_before_early_hashing_are_hashed_again(tmp_path, monkeypatch):
    path = _bundle(tmp_path)
    (path / "config.yaml").write_text("name: tiny\n")  # rewritten now: a later write could keep its file times
    _hashed_early(path)
    calls = _count_hashing(monkeypatch)
    bundle.verify(path)
    assert [p.name for p in calls] == ["config.yaml"]


def test_a_second_check_in_the_same_process_hashes_nothing_unchanged(tmp_path, monkeypatch):
    path = _bundle(tmp_path)
    bundle.verify(path)  # `serve` checks the bundle before it starts, the server then loads it
    calls = _count_hashing(monkeypatch)
    assert bundle.verify(path)["name"] == "tiny"
    assert calls == []


def test_a_file_changed_between_two_checks_is_refused_by_the_second(tmp_path):
    path = _bundle(tmp_path)
    bundle.verify(path)
    (path / "model.safetensors").write_bytes(b"WEIGHTS " * 1000)  # same size, new content
    with pytest.raises(BundleError, match=r"checksum mismatch for model\.safetensors"):
        bundle.verify(path)


def test_a_manifest_that_is_not_an_object_is_refused_by_name(tmp_path):
    path = _bundle(tmp_path)
    (path / bundle.MANIFEST).write_text("[]")
    with pytest.raises(BundleError, match="the manifest is not a JSON object"):
        bundle.verify(path)


@pytest.mark.parametrize("where", [".", "sub", ".."])
def test_an_output_that_is_inside_or_holds_the_source_bundle_is_refused(tmp_path, where):
    source = _bundle(tmp_path)
    with pytest.raises(UserError, match="would overwrite or sit inside the teacher"):
        bundle.refuse_output_over(source / where, source, "teacher")
    bundle.refuse_output_over(tmp_path / "elsewhere", source, "teacher")  # a sibling is fine
