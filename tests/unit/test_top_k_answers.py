"""The answers `predict` and /v1/predict return for a classifier's probabilities."""

from __future__ import annotations

import numpy as np

from modelyard.metrics.classification import top_k_answers


def test_a_tie_answers_the_lowest_index_label_as_argmax_and_the_metrics_do():
    probs = np.random.default_rng(0).random((200, 60)).round(1)  # many rows with their best score tied
    probs /= probs.sum(1, keepdims=True)
    labels = [f"class{i}" for i in range(60)]
    answers = top_k_answers(probs, labels, 3)
    assert [a["label"] for a in answers] == [labels[i] for i in probs.argmax(1)]
