"""Few-shot (SetFit's method) and zero-shot text classification on real BANKING77 rows: `backbone: auto` picks
few-shot below 30 examples per class, the result is an ordinary bundle, and zero-shot from label names works."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import EXAMPLES

import modelyard
from modelyard.export.exporter import export
from modelyard.tasks import get_task, load_config

INTENTS = ["activate_my_card", "age_limit", "apple_pay_or_google_pay", "atm_support"]  # chance: 25%


def _config(folder: Path, shots: int, model: dict, name: str = "few") -> Path:
    """`shots` training rows per intent and 10 held-out test rows per intent (from BANKING77's own test file)."""
    src = EXAMPLES / "data" / "banking77"
    train, test = pd.read_csv(src / "train.csv"), pd.read_csv(src / "test.csv")
    train[train["category"].isin(INTENTS)].groupby("category").head(shots).to_csv(folder / "train.csv", index=False)
    test[test["category"].isin(INTENTS)].groupby("category").head(10).to_csv(folder / "test.csv", index=False)
    config = {
        "name": name,
        "task": "text_classification",
        "data": {
            "train": "train.csv",
            "test": "test.csv",
            "split": {"validation": 0.0},
            "text_column": "text",
            "label_column": "category",
        },
        "model": model,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _choice(path: Path) -> list[dict]:
    config = load_config(path)
    return get_task(config.task).prepare(config).report["backbone_choice"]


@pytest.fixture(scope="module")
def few_shot_bundle(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("few")
    path = _config(folder, 8, {"backbone": "auto", "pair_iterations": 2})
    return modelyard.train(path, output=folder / "bundle", quiet=True)


def test_auto_picks_few_shot_below_thirty_examples_per_class_and_says_why(tmp_path):
    (choice,) = _choice(_config(tmp_path, 8, {"backbone": "auto"}))
    assert choice["backbone"] == "minilm-l6+few-shot"
    assert "8 training examples per class (median) < 30" in choice["reason"]


def test_auto_fine_tunes_normally_from_thirty_examples_per_class(tmp_path):
    (choice,) = _choice(_config(tmp_path, 40, {"backbone": "auto"}))
    assert choice["backbone"] == "minilm-l6"
    assert "40 training examples per class (median) >= 30" in choice["reason"]


@pytest.mark.slow  # trains a few-shot bundle (~40 CPU-seconds)
def test_eight_examples_per_class_give_a_bundle_that_predicts_held_out_rows_better_than_chance(few_shot_bundle):
    assert few_shot_bundle.manifest["backbone"] == "minilm-l6+few-shot"
    metrics = few_shot_bundle.evaluate()
    assert metrics["accuracy"] > 0.6  # 40 held-out rows of 4 intents; chance is 0.25
    reloaded = modelyard.load(few_shot_bundle.path)
    (answer,) = reloaded.predict(["My new card arrived, how do I activate it?"])
    assert answer["label"] == "activate_my_card"


@pytest.mark.slow  # trains a few-shot bundle (~40 CPU-seconds)
def test_a_few_shot_bundle_exports_to_onnx_with_the_same_predictions(few_shot_bundle, tmp_path):
    result = export(few_shot_bundle.path, "onnx", output=tmp_path / "onnx", latency_samples=5)
    assert result.passed
    onnx = modelyard.load(result.path)
    texts = ["Is there an age requirement to open an account?", "Can I use Apple Pay?"]
    assert [a["label"] for a in onnx.predict(texts)] == [a["label"] for a in few_shot_bundle.predict(texts)]


def test_zero_shot_from_label_names_beats_chance_without_training(tmp_path):
    path = _config(tmp_path, 1, {"backbone": "auto", "zero_shot": True}, name="zero")
    model = modelyard.train(path, output=tmp_path / "bundle", quiet=True)
    assert model.manifest["backbone"] == "minilm-l6+zero-shot"
    assert model.evaluate()["accuracy"] > 0.5  # chance is 0.25


def test_zero_shot_embeds_label_descriptions_in_place_of_names(tmp_path):
    """Swapping two labels' descriptions swaps what the model answers: the descriptions, not the names, decide."""
    path = _config(tmp_path, 1, {"backbone": "minilm-l6", "zero_shot": True}, name="described")
    raw = yaml.safe_load(path.read_text())
    raw["data"]["label_descriptions"] = {"age_limit": "activate my card", "activate_my_card": "age limit"}
    path.write_text(yaml.safe_dump(raw))
    model = modelyard.train(path, output=tmp_path / "bundle", quiet=True)
    (answer,) = model.predict(["How do I activate my card?"])
    assert answer["label"] == "age_limit"
