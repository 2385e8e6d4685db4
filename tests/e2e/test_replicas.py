"""Replicated serving: real `modelyard serve` processes sharing one state store (docs/replicas.md). Two replicas
with their own MODELYARD_HOME write to a real PostgreSQL; `monitor`, `feedback import` and retrain's feedback reader
see both replicas' traffic, and each replica's bandit learns from labels stored through the other. Two workers of
one server on the default SQLite file lose no rows either."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from replica_helpers import postgres, postgres_bin, replicas

pytestmark = pytest.mark.slow


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "HF_HUB_OFFLINE": "1", **extra}
    env.pop("MODELYARD_API_KEY", None)
    if "MODELYARD_STATE_URI" not in extra:
        env.pop("MODELYARD_STATE_URI", None)
    return env


def _predict(url: str, texts: list[str]) -> list[tuple[str, str, str]]:
    """(prediction_id, predicted label, answering version) per input."""
    body = httpx.post(f"{url}/v1/predict", json={"inputs": texts}, timeout=60).json()
    return [
        (pid, p["label"], p.get("version", ""))
        for pid, p in zip(body["prediction_ids"], body["predictions"], strict=True)
    ]


def _bandit_rewards(url: str) -> dict[str, float]:
    """The bandit's posterior mean reward per version, from the replica's /metrics."""
    text = httpx.get(f"{url}/metrics").text
    found = re.findall(r'^modelyard_bandit_expected_reward\{version="([^"]*)"\} ([0-9.e+-]+)$', text, re.M)
    return {version: round(float(value), 6) for version, value in found}


def _wait_for(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)


def _cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "modelyard", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr  # JSON reports go to stdout, messages to stderr


@pytest.mark.skipif(postgres_bin() is None, reason="needs the Debian package postgresql (apt-get install postgresql)")
def test_two_replicas_share_the_prediction_log_feedback_and_bandit_rewards_through_postgresql(tfidf_bundle, tmp_path):
    name = json.loads((tfidf_bundle / "modelyard.json").read_text())["name"]
    with postgres(durable=False) as uri:
        env = _env(tmp_path, MODELYARD_STATE_URI=uri)
        options = ("--rollout", "bandit", "--challenger", str(tfidf_bundle), "--threads", "1")
        with replicas(tfidf_bundle, 2, env, *options) as (first, second):
            answered = {
                url: [row for i in range(4) for row in _predict(url, [f"card {i}.{j} lost" for j in range(5)])]
                for url in (first, second)
            }
            # each replica stores the labels of the other one's predictions, moments after they were answered
            for url, other in ((first, second), (second, first)):
                for pid, label, _ in answered[other]:
                    response = httpx.post(f"{url}/v1/feedback", json={"prediction_id": pid, "label": label}, timeout=30)
                    assert response.status_code == 200, response.text
            for url in (first, second):  # one more label each (a repeat) makes both bandits re-read now, not in 30 s
                pid, label, _ = answered[url][0]
                assert httpx.post(f"{url}/v1/feedback", json={"prediction_id": pid, "label": label}).status_code == 200
            # every label is right: Beta(1 + n, 1) per version, n counted over both replicas' 40 predictions
            counts = Counter(version for rows in answered.values() for _, _, version in rows)
            expected = {version: round((1 + n) / (2 + n), 6) for version, n in counts.items()}
            _wait_for(lambda: _bandit_rewards(first) == _bandit_rewards(second) == expected)
            assert _bandit_rewards(first) == expected and _bandit_rewards(second) == expected

        reader = _env(tmp_path / "operator", MODELYARD_STATE_URI=uri)
        monitor = subprocess.run(
            [sys.executable, "-m", "modelyard", "monitor", str(tfidf_bundle), "--json"], env=reader, capture_output=True
        )
        report = json.loads(monitor.stdout)
        # live accuracy is the monitored version's (the bundle's own answers), not the challenger's too
        own = report["feedback"]["version"]
        assert report["requests"] == 40
        assert report["feedback"] == {"count": counts[own], "accuracy": 1.0, "version": own}

        correction = tmp_path / "feedback.csv"
        pid, label, _ = answered[second][-1]  # a correction from an operator's file, for the other replica's answer
        correction.write_text(f"prediction_id,label\n{pid},{label}\n")
        assert "imported 1 feedback labels" in _cli(
            "feedback", "import", str(correction), "--model", str(tfidf_bundle), env=reader
        )

        frame = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from modelyard.monitoring.retrain import feedback_frame; print(len(feedback_frame({name!r}, [])[0]))",
            ],
            env=reader,
            capture_output=True,
            text=True,
        )
        assert frame.stdout.strip() == "40", frame.stderr
    assert list(tmp_path.rglob("predictions.db")) == [], "with MODELYARD_STATE_URI set nothing is logged locally"


def test_two_workers_on_the_default_sqlite_log_lose_no_rows_and_share_feedback(tfidf_bundle, tmp_path):
    with replicas(tfidf_bundle, 1, _env(tmp_path), "--workers", "2", "--threads", "1") as (url,):
        with ThreadPoolExecutor(8) as pool:
            answered = [
                row for rows in pool.map(lambda i: _predict(url, [f"pin {i} blocked"]), range(200)) for row in rows
            ]
            statuses = list(
                pool.map(
                    lambda row: (
                        httpx.post(f"{url}/v1/feedback", json={"prediction_id": row[0], "label": row[1]}).status_code
                    ),
                    answered[:50],
                )
            )
        assert statuses == [200] * 50  # a label may reach the worker that did not answer the prediction
    with sqlite3.connect(tmp_path / "replica-0" / "predictions.db") as conn:
        rows, labelled = conn.execute("SELECT count(*), count(label) FROM predictions").fetchone()
    assert (rows, labelled) == (200, 50)
