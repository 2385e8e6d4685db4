"""Real trains logged through TrackingCallback: per-epoch curves, registration, and two trains at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_config

import modelyard
from modelyard.home import home
from modelyard.tracking import registry, store
from modelyard.tracking.callback import TrackingCallback

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _only_explicit_trackers(monkeypatch):
    """These tests pass their own TrackingCallback; keep `train`'s automatic one from logging a second run."""
    monkeypatch.setenv("MODELYARD_TRACKING", "off")


def train_and_track(config: Path, output: Path, versions: multiprocessing.Queue) -> None:
    """One training process: train, log and register; a tracking warning fails it."""
    tracker = TrackingCallback(warn=lambda message: sys.exit(f"tracking warned: {message}"))
    model = modelyard.train(config, output=output, quiet=True, callbacks=[tracker])
    versions.put(str(tracker.finish(model.path).version))


def test_two_trains_appear_as_runs_with_per_epoch_metric_history(banking_slice, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-scratch",
                "task": "text_classification",
                "data": {
                    "max_rows": 160,
                    "train": str(banking_slice / "train.csv"),
                    "test": str(banking_slice / "test.csv"),
                    "text_column": "text",
                    "label_column": "category",
                },
                "model": {
                    "backbone": "scratch-transformer",
                    "hidden_size": 32,
                    "layers": 1,
                    "heads": 2,
                    "vocab_size": 500,
                    "max_length": 32,
                },
                "train": {"epochs": 2, "batch_size": 32, "early_stopping": None},
            }
        )
    )
    versions = []
    for i in range(2):
        tracker = TrackingCallback(warn=pytest.fail)
        model = modelyard.train(config, output=tmp_path / f"b{i}", quiet=True, callbacks=[tracker])
        versions.append(tracker.finish(model.path))
    assert [str(v.version) for v in versions] == ["1", "2"]
    client = store.client()
    for version in versions:
        curve = client.get_metric_history(version.run_id, "validation_macro_f1")
        assert len(curve) == 2 and curve[0].step < curve[1].step
        assert [m.value for m in client.get_metric_history(version.run_id, "epoch")] == [1.0, 2.0]
        run = client.get_run(version.run_id)
        assert run.info.status == "FINISHED" and "test_macro_f1" in run.data.metrics
    assert registry.get_version("tiny-scratch", version="2").tags["bundle_path"] == str(tmp_path / "b1")


def test_two_trainings_at_once_write_one_consistent_store(banking_slice, tmp_path):
    config = write_config(banking_slice, "tfidf-linear")
    context = multiprocessing.get_context("fork")  # the children start with modelyard already imported
    versions = context.Queue()
    procs = [context.Process(target=train_and_track, args=(config, tmp_path / f"b{i}", versions)) for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert sorted(versions.get(timeout=5) for _ in procs) == ["1", "2"]
    with sqlite3.connect(home() / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    client = store.client()
    runs = client.search_runs([client.get_experiment_by_name("test-tfidf-linear").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
