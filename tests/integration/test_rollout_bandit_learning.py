"""`--rollout bandit` on a plain bundle (no registry alias to watch) learns from /v1/feedback as it arrives."""

from __future__ import annotations

import time

from serving_helpers import serving

TEXTS = ["where is my card", "my card payment was declined", "how do I top up", "the exchange rate is wrong"]


def test_the_bandit_moves_traffic_to_the_arm_with_better_feedback_without_an_alias_watcher(tfidf_bundle):
    with serving(tfidf_bundle, rollout="bandit", challenger=str(tfidf_bundle), drift_interval_s=0) as client:
        labels = client.get("/v1/model").json()["labels"]
        body = client.post("/v1/predict", json={"inputs": TEXTS * 10}).json()
        versions = {p["version"] for p in body["predictions"]}
        assert len(versions) == 2, "both arms answer before any feedback"
        challenger = next(v for v in versions if v != body["model"]["version"])
        for prediction, pid in zip(body["predictions"], body["prediction_ids"], strict=True):
            right = prediction["label"]
            wrong = next(label for label in labels if label != right)
            label = right if prediction["version"] == challenger else wrong
            assert client.post("/v1/feedback", json={"prediction_id": pid, "label": label}).status_code == 200
        share, deadline = 0.0, time.monotonic() + 30
        while share < 0.9 and time.monotonic() < deadline:
            answers = client.post("/v1/predict", json={"inputs": TEXTS * 16}).json()["predictions"]
            share = sum(a["version"] == challenger for a in answers) / len(answers)
            time.sleep(0.2)
    assert share >= 0.9
