"""The prediction log, feedback, shadow comparisons and bandit rewards in a real PostgreSQL (MODELYARD_STATE_URI)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry
from replica_helpers import postgres, postgres_bin

from modelyard import state
from modelyard.monitoring.prediction_log import (
    PredictionLogWriter,
    PredictionRecord,
    has_prediction,
    read_predictions,
    record_feedback,
)
from modelyard.monitoring.shadow import shadow_summary
from modelyard.serving.rollout import Arm, Rollout, RolloutMetrics

pytestmark = pytest.mark.skipif(postgres_bin() is None, reason="needs the Debian package postgresql")


@pytest.fixture(scope="module")
def database():
    with postgres(durable=False) as uri:
        yield uri


@pytest.fixture
def shared(database, monkeypatch):
    monkeypatch.setenv(state.ENV, database)
    yield database
    state.close()


class Constant:
    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, inputs, top_k=1):
        return [{"label": self.label, "score": 1.0} for _ in inputs]


def test_two_models_share_one_database_and_keep_full_timestamp_precision(shared, tmp_path):
    writer = PredictionLogWriter()
    writer.append(
        [
            PredictionRecord("a1", 1764849600.123456, "model-a", "1", "hi", {"label": "x"}, 3.25),
            PredictionRecord("b1", 1764849601.5, "model-b", "7", {"age": 40}, {"label": "y"}, 1.0),
        ]
    )
    writer.close()
    rows = read_predictions(model="model-a")
    assert list(rows["prediction_id"]) == ["a1"] and rows["ts"][0] == 1764849600.123456
    assert json.loads(rows["input"][0]) == "hi" and rows["latency_ms"][0] == 3.25
    assert record_feedback("b1", "y") and not record_feedback("missing", "y")
    assert has_prediction("b1") and json.loads(read_predictions(model="model-b")["label"][0]) == "y"
    assert not list(tmp_path.rglob("*.db"))


def test_shadow_comparisons_and_bandit_rewards_are_read_back_from_postgresql(shared):
    rollout = Rollout(
        "demo", Arm(Constant("a"), "1"), Arm(Constant("b"), "2"), "shadow", 10.0, RolloutMetrics(CollectorRegistry())
    )
    answers = rollout.predict(["x", "y"], 1)
    rollout.shadow(
        ["x", "y"],
        answers,
        [PredictionRecord(x, 1.0, "demo", "1", x, a, 1.0) for x, a in zip("xy", answers, strict=True)],
    )
    rollout.stop()  # waits for the shadow thread's insert
    assert shadow_summary("demo") == {"compared": 2, "disagreements": 2, "agreement": 0.0}

    writer = PredictionLogWriter()
    answers = [("r1", "1", "a"), ("r2", "1", "b"), ("r3", "2", "a")]
    writer.append([PredictionRecord(pid, 1.0, "demo", v, "x", {"label": "a"}, 1.0) for pid, v, _ in answers])
    writer.close()
    for pid, _, label in answers:
        assert record_feedback(pid, label)
    rollout.refresh_rewards()
    assert rollout.rewards == {"1": (1, 1), "2": (1, 0)}


def test_the_log_writer_survives_the_database_dropping_its_connections(shared):
    import psycopg

    writer = PredictionLogWriter()
    writer.append([PredictionRecord("before", 1.0, "restart", "1", "x", {"label": "a"}, 1.0)])
    writer.flush()
    with psycopg.connect(shared, autocommit=True) as admin:  # what a database restart does to every client
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
    writer.append([PredictionRecord("after", 2.0, "restart", "1", "x", {"label": "a"}, 1.0)])
    writer.close()
    assert list(read_predictions(model="restart")["prediction_id"]) == ["before", "after"]
