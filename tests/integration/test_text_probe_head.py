"""LP-FT for pretrained text encoders: the head starts as logistic regression on the frozen encoder's pooled
embeddings, so the classifier works before the first fine-tuning step, and it then learns at the encoder's rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLES

from modelyard.learners import linear_probe
from modelyard.learners.text import TextClassifierLearner
from modelyard.models import catalog
from modelyard.tasks.text_classification import TextModelConfig

LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"]


@pytest.fixture(scope="module")
def four_intents() -> pd.DataFrame:
    frame = pd.read_csv(EXAMPLES / "data" / "banking77" / "train.csv")
    frame = frame[frame["category"].isin(LABELS)].groupby("category").head(12)
    return pd.DataFrame({"text": frame["text"].tolist(), "label": frame["category"].tolist()})


def _learner(head_init: str, texts: list[str]) -> TextClassifierLearner:
    options = TextModelConfig(backbone="minilm-l6", head_init=head_init)
    return TextClassifierLearner.pretrained(catalog.locate("minilm-l6"), "minilm-l6", options, LABELS, texts)


def test_a_probe_initialised_head_predicts_what_the_probe_predicts_before_any_training(four_intents):
    learner = _learner("linear_probe", four_intents["text"].tolist())
    learner.start_head_from_probe(four_intents, "fp32")
    features = learner.embed(four_intents["text"].tolist())
    probe = linear_probe.fit_probe(features, four_intents["label"].map(learner.label_index).values)
    head = learner.predict_proba(four_intents["text"].tolist()).argmax(1)
    assert np.array_equal(head, probe.predict(features))
    assert learner.evaluate(four_intents)["accuracy"] > 0.9  # 48 training texts of 4 intents: separable


def test_only_a_random_head_learns_faster_than_the_encoder(four_intents):
    texts = four_intents["text"].tolist()
    for head_init, head_rate in (("linear_probe", 1e-4), ("random", 20 * 1e-4)):
        learner = _learner(head_init, texts)
        rates = {id(p): group["lr"] for group in learner.param_groups(1e-4, 0.01) for p in group["params"]}
        assert rates[id(learner.module.head.weight)] == pytest.approx(head_rate)
        assert rates[id(learner.module.encoder.encoder.layer[0].output.dense.weight)] == pytest.approx(1e-4)
