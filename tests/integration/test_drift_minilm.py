"""Drift on a fine-tuned MiniLM: unseen in-domain banking questions pass, lines from another domain do not.

BANKING77 stands in for the issue's financial-news classifier (no financial-news set is available offline);
the other domain is Shakespeare (examples/data/tiny_shakespeare, public domain).
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import EXAMPLES

from modelyard import api
from modelyard.drift import reference
from modelyard.monitoring.drift import drift

pytestmark = pytest.mark.slow
WINDOW = 120


@pytest.fixture(scope="module")
def model(minilm_bundle):
    return api.load(minilm_bundle)


def judge(model, texts: list[str]) -> dict:
    predicted = [p["label"] for p in model.predict(texts)]
    return drift(reference.read(model.path), model.learner, texts, predicted)


def test_the_minilm_bundle_stores_embeddings_and_cluster_centroids(model):
    ref = reference.read(model.path)
    assert ref.embeddings.shape[1] == ref.centroids.shape[1] == ref.profile["embeddings"]["dim"]
    assert 8 <= len(ref.centroids) <= 16


def test_unseen_in_domain_questions_do_not_raise_drift(model):
    test = pd.read_csv(EXAMPLES / "data" / "banking77" / "test.csv")
    unseen = test[test["category"].isin(model.labels)].groupby("category").tail(30)  # the fixture used head(10)
    report = judge(model, unseen.sample(WINDOW, random_state=0)["text"].tolist())
    assert report["detected"] is False, report
    assert report["embedding_mmd"]["p_value"] > 0.001


def test_lines_from_another_domain_raise_drift_on_every_input_test(model):
    text = (EXAMPLES / "data" / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if len(line.strip()) > 20 and not line.endswith(":")]
    report = judge(model, lines[:WINDOW])
    assert report["detected"] is True
    assert report["embedding_mmd"]["detected"] and report["embedding_clusters"]["detected"]
