"""A free-text column carries the label: its character n-gram topics let the table models read it (BANKING77
messages, the repository's CC BY 4.0 copy: is the customer writing about a card?)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import modelyard
from modelyard.learners import tabular_encoding

BANKING = Path(__file__).resolve().parents[2] / "examples" / "data" / "banking77" / "train.csv"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    frame = pd.read_csv(BANKING).sample(1200, random_state=1)
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("tickets")
    pd.DataFrame({
        "message": frame["text"].to_numpy(),
        "amount": rng.normal(100, 20, len(frame)).round(2),
        "channel": rng.choice(["app", "web", "phone"], len(frame)),
        "about_card": np.where(frame["category"].str.contains("card"), "yes", "no"),
    }).to_csv(folder / "train.csv", index=False)  # fmt: skip
    config = {
        "name": "tickets",
        "task": "tabular_classification",
        "data": {"train": "train.csv", "target_column": "about_card", "positive_label": "yes",
                 "split": {"validation": 0.15, "test": 0.25, "seed": 1}},
        "model": {"backbone": "lightgbm"},
    }  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _test_auc(config: Path, output: Path) -> tuple[float, modelyard.Model]:
    model = modelyard.train(config, output=output, quiet=True, track=False)
    return json.loads((model.path / "metrics.json").read_text())["test"]["roc_auc"], model


def test_text_topics_carry_the_label_that_length_and_word_count_miss(table, tmp_path, monkeypatch):
    with_topics, model = _test_auc(table, tmp_path / "topics")
    features = json.loads((model.path / "tabular.json").read_text())["encoder"]["texts"]["message"]
    assert len(features["svd"]) == tabular_encoding.TEXT_COMPONENTS and len(features["terms"]) > 500
    monkeypatch.setattr(tabular_encoding, "TEXT_MIN_ROWS", 10**9)  # the former encoding: length and words only
    lengths_only, _ = _test_auc(table, tmp_path / "lengths")
    assert with_topics > 0.9 and lengths_only < 0.7, (with_topics, lengths_only)

    reloaded = modelyard.load(model.path)
    rows = [{"message": "My card still has not arrived", "amount": 90, "channel": "app"},
            {"message": "How do I transfer money to my friend?", "amount": 90, "channel": "app"},
            {"message": "", "amount": 90, "channel": "app"}]  # fmt: skip
    answers = reloaded.predict(rows)
    assert answers == model.predict(rows)
    assert answers[0]["label"] == "yes" and answers[1]["label"] == "no"
