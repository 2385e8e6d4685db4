"""Each `train` without --output gets a bundle folder of its own, even when two start in the same second."""

from __future__ import annotations

from datetime import datetime

from modelyard import pipeline
from modelyard.home import home


class _SameSecond(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 12, 6, 15, 34, 39)


def test_runs_started_in_the_same_second_get_folders_of_their_own(monkeypatch):
    monkeypatch.setattr(pipeline, "datetime", _SameSecond)
    folders = [pipeline.default_output("race") for _ in range(3)]
    assert [f.name for f in folders] == ["20261206-153439", "20261206-153439-2", "20261206-153439-3"]
    assert all(f.is_dir() for f in folders)  # claimed: the next run cannot pick them


def test_resume_picks_the_newest_unfinished_run_past_same_second_suffixes():
    root = home() / "bundles" / "race"
    for name in ("20261206-153439", "20261206-153439-9", "20261206-153439-10", "20261206-153438-11"):
        (root / name / "checkpoints").mkdir(parents=True)
    (root / "20261206-153440").mkdir()  # claimed by a run that wrote no checkpoint yet
    assert pipeline.latest_unfinished("race").name == "20261206-153439-10"
