"""Sentence pairs for few-shot training and the rule `backbone: auto` follows (pure, no model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import ConfigError
from modelyard.learners import few_shot
from modelyard.tasks.text_classification import TextModelConfig


def test_pairs_are_balanced_and_each_positive_pairs_two_different_rows_of_one_class():
    labels = np.repeat(np.arange(5), 8)
    pairs = few_shot.make_pairs(labels, iterations=3, seed=0)
    same = pairs[:, 2] == 1
    assert same.sum() == (~same).sum() == 3 * len(labels)
    i, j = pairs[same, 0], pairs[same, 1]
    assert np.all(labels[i] == labels[j]) and np.all(i != j)
    assert np.all(labels[pairs[~same, 0]] != labels[pairs[~same, 1]])


def test_a_class_with_one_example_still_gets_negative_pairs():
    pairs = few_shot.make_pairs(np.array([0, 1, 1]), iterations=1, seed=0)
    (row,) = [p for p in pairs if p[0] == 0]  # no second row of class 0: only the negative pair
    assert row[2] == 0 and row[1] in (1, 2)


def test_auto_uses_the_median_class_size_so_one_rare_class_does_not_make_a_large_set_few_shot():
    train = pd.DataFrame({"label": ["a"] * 100 + ["b"] * 100 + ["c"] * 3})
    suffix, why = few_shot.choose(TextModelConfig(), train)
    assert suffix == "" and "100 training examples per class" in why
    suffix, _ = few_shot.choose(TextModelConfig(), train.groupby("label").head(8))
    assert suffix == few_shot.FEW_SHOT


def test_zero_shot_reads_label_names_as_words_unless_described():
    texts = few_shot.label_texts(["card_arrival", "top-up"], {"top-up": "adding money to the account"})
    assert texts == ["card arrival", "adding money to the account"]


def test_only_e5_encoders_get_query_and_passage_prefixes():
    assert few_shot.prefixes("multilingual-e5-small") == ("query: ", "passage: ")
    assert few_shot.prefixes("minilm-l6") == ("", "")


def test_zero_shot_without_a_pretrained_encoder_is_refused_and_unknown_descriptions_are_named():
    with pytest.raises(ConfigError, match="zero_shot needs a pretrained text encoder"):
        few_shot.config_warnings(TextModelConfig(backbone="tfidf-linear", zero_shot=True), None, ["a"], False)
    options = TextModelConfig(zero_shot=True)
    (warning,) = few_shot.config_warnings(options, {"a": "x", "typo": "y"}, ["a", "b"], True)
    assert "1 labels not in train (typo)" in warning
