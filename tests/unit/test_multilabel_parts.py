"""Multi-label pieces without a neural model: reading label sets, the checks `validate` runs, threshold tuning,
the metrics, and the answer shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelyard.data.label_sets import parse_cell
from modelyard.errors import DataError
from modelyard.metrics.multilabel import MIN_POSITIVES, multilabel_metrics, set_answers, tune_thresholds
from modelyard.tasks import get_task, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data" / "goemotions"


def _config(folder: Path, rows: pd.DataFrame, **data) -> Path:
    rows.to_csv(folder / "train.csv", index=False)
    config = {
        "name": "ml",
        "task": "multilabel_classification",
        "data": {"train": "train.csv", "text_column": "text", "label_column": "labels", **data},
        "model": {"backbone": "tfidf-linear"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prepare(path: Path):
    config = load_config(path)
    return get_task(config.task).prepare(config)


def _goemotions(rows: int = 400) -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "train.csv").head(rows)


def test_a_cell_is_split_on_the_separator_or_read_as_a_json_list():
    assert parse_cell("joy | anger|joy", "|") == ("anger", "joy")
    assert parse_cell('["joy", "anger"]', "|") == ("anger", "joy")
    assert parse_cell(["b", "a"], ";") == ("a", "b")
    assert parse_cell("[]", "|") == ()
    assert parse_cell(None, "|") is None


def test_validate_refuses_a_separator_the_data_does_not_use_and_names_the_right_one(tmp_path):
    rows = _goemotions().assign(labels=lambda f: f["labels"].str.replace("|", ";"))
    with pytest.raises(DataError) as error:
        _prepare(_config(tmp_path, rows))
    assert "never contains the label separator '|'" in error.value.message
    assert "label_separator: ';'" in error.value.hint


def test_validate_refuses_labels_joined_by_another_separator_in_some_cells_and_names_the_first(tmp_path):
    """Cells like "admiration, joy" beside "a|b" cells were read as made-up labels (49 labels instead of 27)."""
    rows = _goemotions()
    rows.loc[7, "labels"] = '["joy", "anger"]'  # a JSON list is read as a list, whatever the separator
    _prepare(_config(tmp_path, rows))
    rows.loc[[10, 20], "labels"] = ["admiration, joy", "anger;joy"]
    with pytest.raises(DataError) as error:
        _prepare(_config(tmp_path, rows))
    assert "line 12: label 'admiration, joy'" in error.value.message and "joined by ','" in error.value.message
    assert "2 such labels" in error.value.message and "JSON list" in error.value.hint


def test_validate_refuses_a_missing_label_column_by_name(tmp_path):
    with pytest.raises(DataError) as error:
        _prepare(_config(tmp_path, _goemotions(), label_column="emotions"))
    assert "emotions" in str(error.value)


def test_validate_refuses_a_free_text_column_given_as_labels(tmp_path):
    with pytest.raises(DataError) as error:
        _prepare(_config(tmp_path, _goemotions(), label_column="text"))
    assert "looks like free text" in error.value.message


def test_validate_reports_rows_with_several_labels_and_warns_about_rare_labels(tmp_path):
    prepared = _prepare(_config(tmp_path, _goemotions()))
    train = prepared.splits["train"]
    assert prepared.report["rows_with_several_labels"] == int((train["labels"].map(len) > 1).sum()) > 0
    assert isinstance(train["labels"].iloc[0], tuple)
    assert any("fewer than 5 training rows" in w for w in prepared.warnings)


def test_empty_label_sets_are_dropped_or_kept_as_no_label(tmp_path):
    rows = pd.DataFrame({"text": [f"text number {i}" for i in range(40)], "labels": ["a|b", "a", "b", "[]"] * 10})
    dropped = _prepare(_config(tmp_path, rows, split={"validation": 0.0, "test": 0.0}))
    assert dropped.report["files"]["train"]["empty_label_sets"] == 10
    assert len(dropped.splits["train"]) == 30
    kept = _prepare(_config(tmp_path, rows, empty_labels="keep", split={"validation": 0.0, "test": 0.0}))
    assert len(kept.splits["train"]) == 40
    assert kept.report["labels_per_row"]["empty"] == 10


def test_with_empty_labels_kept_a_test_row_whose_only_label_is_unseen_in_train_is_dropped_not_scored_as_empty(
    tmp_path,
):
    """Its true set is unknown, not "no label applies", as `evaluate` already treats it."""
    rows = pd.DataFrame({"text": [f"text number {i}" for i in range(40)], "labels": ["a|b", "a", "b", "[]"] * 10})
    pd.DataFrame({"text": ["one", "two", "three"], "labels": ["zed", "[]", "a|zed"]}).to_csv(
        tmp_path / "test.csv", index=False
    )
    prepared = _prepare(_config(tmp_path, rows, empty_labels="keep", test="test.csv", split={"validation": 0.0}))
    assert prepared.splits["test"]["labels"].tolist() == [(), ("a",)]
    assert "test: 1 rows dropped: none of their labels is kept" in prepared.warnings


def test_labels_below_min_label_rows_are_removed_everywhere(tmp_path):
    prepared = _prepare(_config(tmp_path, _goemotions(), min_label_rows=5, split={"validation": 0.0, "test": 0.0}))
    counts = _goemotions()["labels"].str.split("|").explode().value_counts()
    kept = {label for labels in prepared.splits["train"]["labels"] for label in labels}
    assert kept == set(counts[counts >= 5].index) and (counts < 5).any()
    assert any("data.min_label_rows" in w for w in prepared.warnings)


def test_each_label_gets_its_own_threshold_and_rare_labels_share_one():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < [0.3, 0.1, 0.002]).astype(np.int8)
    y[:1, 2] = 1  # one positive: too few for its own threshold
    scores = np.clip(y * np.array([0.4, 0.8, 0.9]) + rng.random((400, 3)) * 0.35, 0, 1)
    thresholds, info = tune_thresholds(y, scores)
    assert thresholds[0] != thresholds[1]
    assert y[:, 2].sum() < MIN_POSITIVES and thresholds[2] == pytest.approx(info["shared"])
    assert info["tuned_labels"] == 2


def test_metrics_match_their_definitions():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    pred = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    metrics = multilabel_metrics(y, pred, ["a", "b", "c"])
    assert metrics["subset_accuracy"] == pytest.approx(1 / 3)
    assert metrics["hamming_loss"] == pytest.approx(3 / 9)
    # micro: tp 3, fp 1, fn 2
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert metrics["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}


def test_an_answer_lists_every_label_above_its_threshold_best_first():
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.2, 0.3]])
    thresholds = np.array([0.5, 0.5, 0.5])
    first, second = set_answers(scores, thresholds, ["a", "b", "c"], 2, True, "|")
    assert [x["label"] for x in first["labels"]] == ["a", "c"]
    assert first["label"] == "a|c"
    assert [x["label"] for x in first["probabilities"]] == ["a", "c"]
    assert second["label"] == "c"  # none passed: the best label, as the data never had an empty set
    assert set_answers(scores[1:], thresholds, ["a", "b", "c"], 1, False, "|")[0]["labels"] == []


def test_the_score_of_an_answer_is_the_best_score_in_its_set_not_of_a_label_that_missed_its_threshold():
    scores = np.array([[0.18, 0.175, 0.05]])
    [answer] = set_answers(scores, np.array([0.3, 0.1, 0.5]), ["neutral", "love", "joy"], 1, True, "|")
    assert answer["label"] == "love" and answer["score"] == pytest.approx(0.175)
