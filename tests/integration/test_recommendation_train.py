"""Recommendation end to end through the Python API on generated interactions with two taste groups."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import modelyard


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        group = user % 2  # even users like items 0-19, odd users items 20-39
        liked = rng.choice(np.arange(20) + 20 * group, size=8, replace=False)
        for t, item in enumerate(liked):
            rows.append((f"u{user}", f"i{item}", int(rng.integers(4, 6)), 1000 + 10 * t))
        rows.append((f"u{user}", f"i{rng.integers(40)}", 1, 2000))  # one disliked item each
    pd.DataFrame(rows, columns=["user", "item", "stars", "ts"]).to_csv(folder / "ratings.csv", index=False)
    config = {
        "name": "tiny-rec",
        "task": "recommendation",
        "data": {
            "train": "ratings.csv",
            "user_column": "user",
            "item_column": "item",
            "rating_column": "stars",
            "rating_threshold": 4,
            "time_column": "ts",
        },
        "model": {"dim": 8, "negatives": 4},
        "train": {"epochs": 3, "batch_size": 64},
    }
    (folder / "rec.yaml").write_text(yaml.safe_dump(config))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny embedding tables train fastest on one thread (and far faster on a busy machine)
    try:
        return modelyard.train(folder / "rec.yaml", output=folder / "bundle", quiet=True)
    finally:
        torch.set_num_threads(threads)


def test_training_writes_ranking_metrics_and_the_popularity_baseline(bundle):
    metrics = json.loads((bundle.path / "metrics.json").read_text())
    for k in (5, 10, 20):
        assert {f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}", f"coverage@{k}"} <= set(metrics["test"])
    assert metrics["test"]["users"] == 60
    assert "recall@10" in metrics["baselines"]["popularity"]["test"]


def test_recommendations_exclude_what_the_user_already_rated(bundle):
    model = modelyard.load(bundle.path)
    frame = pd.read_csv(bundle.config.data.train)
    seen = set(frame[frame["user"] == "u3"]["item"])
    answer = model.predict([{"user": "u3", "k": 10}])[0]
    assert answer["cold_start"] is False and len(answer["items"]) == 10
    assert seen.isdisjoint(x["item"] for x in answer["items"])
    scores = [x["score"] for x in answer["items"]]
    assert scores == sorted(scores, reverse=True)


def test_an_unknown_user_gets_popular_items_flagged_as_cold_start(bundle):
    answer = modelyard.load(bundle.path).predict([{"user": "someone-new", "k": 5}])[0]
    assert answer["cold_start"] is True and len(answer["items"]) == 5


def test_more_like_this_returns_other_items(bundle):
    answer = modelyard.load(bundle.path).predict([{"item": "i3", "k": 5}])[0]
    assert len(answer["items"]) == 5 and "i3" not in [x["item"] for x in answer["items"]]


def test_the_server_answers_a_recommendation_request(bundle):
    from serving_helpers import serving

    with serving(bundle.path) as client:
        response = client.post("/v1/predict", json={"inputs": [{"user": "u1", "k": 3}, {"user": "nobody"}]})
        assert response.status_code == 200, response.text
        known, cold = response.json()["predictions"]
        assert len(known["items"]) == 3 and known["cold_start"] is False and cold["cold_start"] is True
        invalid = client.post("/v1/predict", json={"inputs": [{"user": "u1", "item": "i1"}]})
        assert invalid.status_code == 422 and "exactly one" in invalid.json()["error"]["message"]
        ranked = client.post("/v1/predict", json={"inputs": [{"user": "u1"}], "top_k": 2})  # a class count: no classes
        assert ranked.status_code == 422 and "top_k 2: a recommendation model has no classes" in ranked.text


def test_a_bundle_evaluates_on_a_file_of_interactions(bundle):
    metrics = modelyard.load(bundle.path).evaluate(bundle.config.data.train)
    assert metrics["users"] == 60
    # random scores find 0.25 of what a user likes here (sd 0.02 over 20 draws); this 3-epoch model finds 0.31
    assert metrics["recall@10"] >= 0.28


def test_predict_from_a_file_mixes_user_and_item_requests(bundle):
    model = modelyard.load(bundle.path)
    frame = pd.DataFrame({"user": ["u1", None], "item": [None, "i3"], "k": [2, 4]})
    answers = model.predict(model.task.inputs_from_frame(frame, model.config))
    assert len(answers[0]["items"]) == 2 and answers[0]["cold_start"] is False
    assert len(answers[1]["items"]) == 4 and "cold_start" not in answers[1]


def test_the_report_puts_intervals_on_per_user_metrics_at_every_k(bundle, monkeypatch):
    from modelyard.evaluation.report import render
    from modelyard.metrics import cost

    monkeypatch.setattr(cost, "TIME_BUDGET_S", 0.2)
    html = render(modelyard.load(bundle.path))
    recall = json.loads((bundle.path / "metrics.json").read_text())["test"]["recall@10"]
    assert f"scores recall@10 {recall:.4f} (95% bootstrap interval" in html
    assert "percentile bootstrap over test users" in html
    assert '<section id="at-k-test"' in html and "not available" not in html


def test_the_model_card_gives_per_user_metrics_with_their_intervals(bundle):
    saved = json.loads((bundle.path / "metrics.json").read_text())["test_intervals"]
    card = (bundle.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"[{saved['recall@10']['low']:.4f}, {saved['recall@10']['high']:.4f}]" in card


def test_the_server_refuses_feedback_on_a_ranking_rather_than_scoring_it_wrong(bundle):
    from serving_helpers import serving

    with serving(bundle.path) as client:
        answer = client.post("/v1/predict", json={"inputs": [{"user": "u1", "k": 3}]}).json()
        feedback = client.post("/v1/feedback", json={"prediction_id": answer["prediction_ids"][0], "label": "i3"})
    assert feedback.status_code == 422 and "not labels (a ranking of items)" in feedback.json()["error"]["message"]
