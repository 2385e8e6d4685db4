"""The model card from a bundle's files: where each split came from, what its metrics table promises, its wording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.evaluation import model_card

ASSISTANT_METRICS = {
    "validation": {"threshold": 0.6767, "cited_answer_rate": 0.6957, "balanced_accuracy": 0.9583},
    "test": {"threshold": 0.6767, "cited_answer_rate": 0.8571, "balanced_accuracy": 1.0},
}
SPLITS = {s: {"rows": 4, "sha256": "ab" * 32} for s in ("train", "validation", "test")}


def _card(folder: Path, task: str, metrics: dict, report: dict) -> str:
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (folder / "data_report.json").write_text(json.dumps(report), encoding="utf-8")
    (folder / "config.yaml").write_text(f"name: m\ntask: {task}\n", encoding="utf-8")
    return model_card.render(folder, {"name": "m", "task": task, "backbone": "b", "data": SPLITS, "versions": {}})


def test_an_assistants_card_names_its_documents_and_questions_file_not_a_carving_from_train(tmp_path):
    sources = {"train": "docs", "validation": "questions.jsonl", "test": "carved from validation (20%, seed 42)"}
    card = _card(tmp_path, "assistant", ASSISTANT_METRICS, {"sources": sources})
    assert "| validation | 4 | `abababababababab` | questions.jsonl |" in card
    assert "| test | 4 | `abababababababab` | carved from validation (20%, seed 42) |" in card
    assert "carved from train" not in card


def test_a_split_without_a_recorded_source_is_still_carved_from_train(tmp_path):
    card = _card(tmp_path, "text_classification", ASSISTANT_METRICS, {})
    assert "| test | 4 | `abababababababab` | carved from train |" in card


def test_a_card_without_intervals_does_not_promise_them(tmp_path):
    card = _card(tmp_path, "assistant", ASSISTANT_METRICS, {})
    assert "| metric | validation | test |" in card and "bootstrap" not in card


def test_a_small_test_split_without_intervals_does_not_point_at_intervals(tmp_path):
    metrics = {"test": {"rmse": 2.0, "samples": 200}}
    assert "intervals above" not in _card(tmp_path, "tabular_regression", metrics, {})
    saved = {**metrics, "test_intervals": {"rmse": {"value": 2.0, "low": 1.5, "high": 2.5}}}
    assert "The test split has only 200 examples: the intervals above are wide." in _card(
        tmp_path, "tabular_regression", saved, {}
    )


def test_a_card_with_intervals_shows_them_under_its_promise(tmp_path):
    saved = {**ASSISTANT_METRICS, "test_intervals": {"balanced_accuracy": {"value": 1.0, "low": 0.9, "high": 1.0}}}
    card = _card(tmp_path, "assistant", saved, {})
    assert "| metric | validation | test (95% bootstrap interval) |" in card
    assert "| balanced_accuracy | 0.9583 | 1.0000 [0.9000, 1.0000] |" in card


@pytest.mark.parametrize(
    ("task", "opening"),
    [
        ("assistant", "An `assistant` model"),
        ("image_classification", "An `image_classification` model"),
        ("object_detection", "An `object_detection` model"),
        ("audio_classification", "An `audio_classification` model"),
        ("text_classification", "A `text_classification` model"),
    ],
)
def test_the_intended_use_takes_the_article_of_the_task_name(tmp_path, task, opening):
    assert f"{opening} (`b`) trained with modelyard." in _card(tmp_path, task, {}, {})


FEDERATED_DP_SGD = {
    "epsilon": 7.91,
    "delta": 1e-4,
    "target_epsilon": 8.0,
    "max_grad_norm": 1.0,
    "sampling": "poisson",
    "accountant": "rdp",
    "federated": {"mechanism": "dp_sgd_at_sites", "rounds": 4, "updates": 4, "accounting": "summed"},
}


def test_a_federated_dp_sgd_card_has_a_privacy_section_saying_the_guarantee_is_each_sites(tmp_path):
    card = _card(tmp_path, "tabular_classification", {"test": {}, "privacy": FEDERATED_DP_SGD}, {})
    section = card.split("## Privacy", 1)[1].split("## Known limits")[0]
    assert (
        "DP-SGD at each site: (ε = 7.91, δ = 0.0001)-differential privacy for each training example of each site"
        in section
    )
    assert "target ε 8 split evenly over 4 rounds" in section and "clipped to 1" in section
    assert "docs/federated.md" in section


def test_a_client_dp_card_says_the_guarantee_covers_each_sites_whole_data(tmp_path):
    spent = {"epsilon": 30.5, "delta": 1e-5, "noise_multiplier": 2.0, "accountant": "rdp"}
    spent["federated"] = {"mechanism": "client_dp", "max_update_norm": 1.0, "updates": 3, "accounting": "local DP"}
    card = _card(tmp_path, "tabular_classification", {"test": {}, "privacy": spent}, {})
    section = card.split("## Privacy", 1)[1].split("## Known limits")[0]
    assert "client-level DP: (ε = 30.5, δ = 1e-05)-differential privacy for each site's whole data set" in section
    assert "over the 3 updates the busiest site sent" in section
    assert "The noise was drawn from OS entropy" in section


@pytest.mark.parametrize(
    ("task", "alike"),
    [
        ("image_classification", "same kind of pictures: subjects, cameras, lighting and framing"),
        ("text_classification", "same language, domain and length"),
    ],
)
def test_the_intended_use_says_what_like_the_training_data_means_for_the_tasks_inputs(tmp_path, task, alike):
    """An image model's card told its users to send inputs of the same language and length."""
    card = _card(tmp_path, task, {"test": {"accuracy": 0.9}}, {})
    assert f"Intended for inputs like its training data ({alike}; see *Data*)" in card
