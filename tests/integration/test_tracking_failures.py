"""Tracking never blocks work and fails in one clear line: corrupt or locked databases, refusing servers."""

from __future__ import annotations

import socket
import sqlite3
from types import SimpleNamespace

import pytest

from modelyard.home import home
from modelyard.tracking import registry, store
from modelyard.tracking.callback import TrackingCallback
from modelyard.training.callbacks import TrainerControl, TrainerState


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_store_lives_under_modelyard_home_unless_a_uri_is_given(monkeypatch):
    monkeypatch.delenv("MODELYARD_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store.tracking_uri() == f"sqlite:///{home() / 'mlflow.db'}"
    assert store.artifact_root(store.tracking_uri()) == (home() / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert store.tracking_uri() == "http://mlflow.internal:5000"
    monkeypatch.setenv("MODELYARD_TRACKING_URI", "postgresql://db/mlflow")
    assert store.tracking_uri() == "postgresql://db/mlflow"


def test_a_corrupt_database_is_one_clear_error_and_is_left_as_it_was():
    db = home() / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(store.TrackingStoreError, match="not an SQLite database") as caught:
        registry.list_models()
    assert str(db) in str(caught.value) and "mv " in str(caught.value)
    assert db.read_bytes() == b"this is not a database" * 100


def test_a_locked_database_says_so(monkeypatch):
    monkeypatch.setattr(store, "SQLITE_TIMEOUT_S", 0.1)
    db = home() / "mlflow.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(store.TrackingStoreError, match="locked by another process"):
            registry.list_models()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_refusing_server_is_one_error_naming_the_server(monkeypatch):
    monkeypatch.setenv("MODELYARD_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(store.TrackingStoreError, match="refused or failed"):
        registry.describe("anything")


def test_training_goes_on_and_warns_once_when_the_store_refuses(monkeypatch, tfidf_bundle):
    monkeypatch.setenv("MODELYARD_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    warnings: list[str] = []
    tracker = TrackingCallback(warn=warnings.append)
    state, control = TrainerState(), TrainerControl()
    config = SimpleNamespace(name="intents", task="text_classification", model=SimpleNamespace(backbone="x"))
    tracker.on_train_begin(state, control, config)
    for step in (10, 20):
        state.global_step = step
        tracker.on_evaluate(state, control, {"accuracy": 0.5, "epoch": step // 10})
    assert tracker.finish(tfidf_bundle) is None
    assert len(warnings) == 1
    assert "models log" in warnings[0] and "training goes on" in warnings[0]
    assert control == TrainerControl()


def test_only_the_main_process_tracks(monkeypatch, tfidf_bundle):
    monkeypatch.setenv("RANK", "1")
    tracker = TrackingCallback(warn=pytest.fail)
    assert tracker.finish(tfidf_bundle) is None
    assert not (home() / "mlflow.db").exists()
