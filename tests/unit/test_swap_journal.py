"""A folder-swap journal (`.NAME.swap.json`) is only obeyed when it names the swap's own folders beside the target:
a planted journal naming any other folder moves and deletes nothing, even when a read-only command finds it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from modelyard import bundle, fsutil


def _tiny_bundle(path: Path) -> Path:
    def write(staging: Path) -> dict:
        (staging / "weights.txt").write_text("mine")
        return {}

    return bundle.write_bundle(path, write, {"name": "m", "task": "t"})


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("precious")
    return victim


@pytest.mark.parametrize(
    "record",
    [
        {"staging": "nothing-here", "old": "{victim}"},  # an absolute path: `parent / "/abs"` is "/abs"
        {"staging": "nothing-here", "old": "../victim"},
        {"staging": ".model.partial-1", "old": "../victim/.model.old-12345678"},
        {"staging": ".model.partial-1", "old": ".other.old-12345678"},  # another target's swap
        {"staging": "{victim}", "old": ".model.old-12345678"},  # would move the victim into the bundle's place
    ],
)
def test_reading_a_bundle_beside_a_planted_journal_moves_and_deletes_nothing(tmp_path, caplog, record):
    victim = _victim(tmp_path)
    model = _tiny_bundle(tmp_path / "drop" / "model")
    journal = model.with_name(".model.swap.json")
    journal.write_text(json.dumps({key: value.format(victim=victim) for key, value in record.items()}))
    with caplog.at_level(logging.WARNING, logger="modelyard.fsutil"):
        bundle.verify(model)
    assert (victim / "thesis.txt").read_text() == "precious"
    assert (model / "weights.txt").read_text() == "mine"
    assert str(journal) in caplog.text and "nothing was moved or deleted" in caplog.text


def test_a_planted_journal_naming_a_link_with_the_swap_names_is_not_followed(tmp_path, caplog):
    victim = _victim(tmp_path)
    model = _tiny_bundle(tmp_path / "model")
    (tmp_path / ".model.old-12345678").symlink_to(victim)
    record = {"staging": ".model.partial-1", "old": ".model.old-12345678"}
    (tmp_path / ".model.swap.json").write_text(json.dumps(record))
    fsutil.recover_dir(model)
    assert (victim / "thesis.txt").read_text() == "precious" and (model / "weights.txt").read_text() == "mine"
    assert "is a link" in caplog.text


def test_a_swap_from_a_staging_folder_elsewhere_journals_only_its_own_names(tmp_path, monkeypatch):
    """The writer's staging may live anywhere (a download folder); the journal still names plain sibling names."""
    target, staging = tmp_path / "latest", tmp_path / "downloads" / "deep" / "bundle"
    staging.mkdir(parents=True)
    (staging / "a.txt").write_text("new")
    journalled: list[dict] = []
    real = fsutil.atomic_write_json
    monkeypatch.setattr(fsutil, "atomic_write_json", lambda path, obj: (journalled.append(obj), real(path, obj)))
    fsutil.replace_dir(staging, target)
    assert (target / "a.txt").read_text() == "new" and not staging.exists()
    [record] = journalled
    assert record["staging"].startswith(".latest.partial-") and record["old"].startswith(".latest.old-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "latest"]
