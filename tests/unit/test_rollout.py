"""Rollout routing with stand-in models: canary share, silent shadow, Thompson sampling, atomic swaps."""

from __future__ import annotations

import hashlib
import json

import pytest
from prometheus_client import CollectorRegistry

from modelyard.monitoring.prediction_log import PredictionRecord, connect
from modelyard.monitoring.shadow import shadow_summary
from modelyard.privacy import Redactor
from modelyard.serving.rollout import Arm, Rollout, RolloutMetrics


class Constant:
    """A stand-in model that always answers `label`."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls = 0

    def predict(self, inputs, top_k=1):
        self.calls += len(inputs)
        return [{"label": self.label, "score": 1.0} for _ in inputs]


class Noting(Constant):
    """A stand-in model whose answers quote the input in a note, as a tabular model's unseen-category note does."""

    def predict(self, inputs, top_k=1):
        return [
            {**answer, "note": f"category {x!r} unseen"}
            for x, answer in zip(inputs, super().predict(inputs), strict=True)
        ]


def rollout(mode, tmp_path, champion="a", challenger="b", **options) -> Rollout:
    arms = Arm(options.get("model", Constant)(champion), "1"), Arm(options.get("model", Constant)(challenger), "2")
    metrics = RolloutMetrics(CollectorRegistry())
    redactors = options.get("redactors", (None, None))
    return Rollout("demo", *arms, mode, options.get("canary_percent", 10.0), metrics, tmp_path, 0, redactors)


def shadowed(r: Rollout, inputs: list, store: bool = True) -> list:
    """What the server does for one request: the routed answers, then the shadow of the logged request."""
    answers = r.predict(inputs, 1)
    records = [
        PredictionRecord(f"p{i}", 0.0, "demo", "1", x, a, 1.0, store)
        for i, (x, a) in enumerate(zip(inputs, answers, strict=True))
    ]
    r.shadow(inputs, answers, records)
    return answers


def test_off_sends_every_input_to_the_champion_and_marks_its_version(tmp_path):
    answers = rollout("off", tmp_path).predict(["x"] * 50, 1)
    assert {a["version"] for a in answers} == {"1"} and {a["label"] for a in answers} == {"a"}


def test_canary_sends_about_its_share_to_the_challenger(tmp_path):
    answers = rollout("canary", tmp_path, canary_percent=20.0).predict(["x"] * 2000, 1)
    share = sum(a["version"] == "2" for a in answers) / len(answers)
    assert share == pytest.approx(0.2, abs=0.03)


def test_shadow_answers_with_the_champion_and_logs_the_challengers_disagreements(tmp_path):
    r = rollout("shadow", tmp_path)
    answers = shadowed(r, ["x", "y", "z"])
    r.stop()  # waits for the shadow thread
    assert {a["label"] for a in answers} == {"a"}
    assert r.challenger.model.calls == 3
    assert shadow_summary("demo", directory=tmp_path) == {"compared": 3, "disagreements": 3, "agreement": 0.0}


def test_the_shadow_log_redacts_both_answers_and_keeps_no_hash_of_an_input_not_to_be_stored(tmp_path):
    hidden = Redactor(kinds=("email", "phone"))
    r = rollout("shadow", tmp_path, model=Noting, redactors=(hidden, hidden))
    shadowed(r, ["call 13800138000 jane.doe@example.com"])
    shadowed(r, ["mail john@example.org"], store=False)
    r.stop()
    conn = connect(tmp_path / "predictions.db")
    rows = conn.execute("SELECT input_sha256, champion, challenger FROM shadow_predictions ORDER BY rowid").fetchall()
    conn.close()
    logged = json.dumps("call <PHONE> <EMAIL>", ensure_ascii=False, sort_keys=True)
    assert [digest for digest, _, _ in rows] == [hashlib.sha256(logged.encode()).hexdigest(), ""]
    told, heard = json.loads(rows[0][1]), json.loads(rows[0][2])
    assert told["note"] == heard["note"] == "category 'call <PHONE> <EMAIL>' unseen"
    assert "example" not in json.dumps(rows)


def test_the_bandit_shifts_traffic_to_the_version_with_better_feedback(tmp_path):
    r = rollout("bandit", tmp_path)
    conn = connect(tmp_path / "predictions.db")
    rows = [
        (f"id{i}", 0.0, "demo", version, None, "h", json.dumps({"label": "a"}), 1.0, json.dumps(label), 0.0)
        for i, (version, label) in enumerate([("1", "b")] * 30 + [("2", "a")] * 30)
    ]
    with conn:
        conn.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.close()
    r.refresh_rewards()
    assert r.rewards == {"1": (0, 30), "2": (30, 0)}
    answers = r.predict(["x"] * 500, 1)
    assert sum(a["version"] == "2" for a in answers) > 480


def test_the_bandit_counts_a_class_sent_as_a_json_number_as_the_same_label(tmp_path):
    """/v1/feedback may carry {"label": 1} for the class "1"; a right answer is a reward, not a loss."""
    r = rollout("bandit", tmp_path, champion="1")
    conn = connect(tmp_path / "predictions.db")
    rows = [
        (f"id{i}", 0.0, "demo", "1", None, "h", json.dumps({"label": "1"}), 1.0, json.dumps(label), 0.0)
        for i, label in enumerate([1, "1", 0])
    ]
    with conn:
        conn.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.close()
    r.refresh_rewards()
    assert r.rewards == {"1": (2, 1)}


def test_a_swap_replaces_the_champion_for_the_next_batch(tmp_path):
    r = rollout("off", tmp_path)
    r.swap("champion", Arm(Constant("c"), "3"))
    assert r.predict(["x"], 1)[0] == {"label": "c", "score": 1.0, "version": "3"}


def test_shadow_summary_is_none_when_nothing_was_shadowed(tmp_path):
    assert shadow_summary("demo", directory=tmp_path) is None
