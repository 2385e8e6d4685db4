"""Text-classification labels are read as written: a number is one class however the file spells it."""

import json

import pytest

from modelyard.errors import DataError
from modelyard.tasks import config_from_dict, get_task
from modelyard.tasks.text_classification import _read


def config_for(path, **data) -> object:
    raw = {
        "name": "labels",
        "task": "text_classification",
        "data": {"train": str(path), "text_column": "text", "label_column": "label", **data},
        "model": {"backbone": "tfidf-linear"},
    }
    return config_from_dict(raw, "test")


def write_rows(path, rows: list[tuple[str, str]]) -> str:
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    return str(path)


def test_json_lines_labels_1_and_quoted_1_and_1_point_0_are_one_class(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"text": t, "label": v} for t, v in [("a", 1), ("b", "1"), ("c", 1.0), ("d", 0)]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame, _, _ = _read(str(path), config_for(path), "train")
    assert sorted(frame["label"].unique()) == ["0", "1"]


def test_an_integer_parquet_label_column_with_a_gap_keeps_integer_labels(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": pa.array([0, 1, None], pa.int64())}), path)
    frame, _, _ = _read(str(path), config_for(path), "train")
    assert sorted(frame["label"].unique()) == ["0", "1"]


def test_label_descriptions_with_number_keys_name_the_labels_as_read(tmp_path):
    raw = {
        "name": "labels",
        "task": "text_classification",
        "data": {"train": "t.csv", "label_descriptions": {0: "a bad review", 1.0: "a good review"}},
    }
    assert config_from_dict(raw, "test").data.label_descriptions == {"0": "a bad review", "1": "a good review"}


def test_a_named_test_file_whose_labels_are_all_unseen_in_train_is_refused(tmp_path):
    train = write_rows(tmp_path / "train.csv", [(f"text {i}", "ab"[i % 2]) for i in range(20)])
    test = write_rows(tmp_path / "test.csv", [("lost card", "c"), ("top up", "d")])
    with pytest.raises(DataError, match=r"test\.csv \(data\.test\): none of its 2 rows has a label the training data"):
        get_task("text_classification").prepare(config_for(train, test=test))


def test_a_named_validation_file_with_some_unseen_labels_keeps_the_rest_with_a_warning(tmp_path):
    train = write_rows(tmp_path / "train.csv", [(f"text {i}", "ab"[i % 2]) for i in range(20)])
    validation = write_rows(tmp_path / "val.csv", [("lost card", "c"), ("top up", "a")])
    data = get_task("text_classification").prepare(config_for(train, validation=validation))
    assert len(data.splits["validation"]) == 1
    assert any("1 rows dropped: labels not in train (c)" in w for w in data.warnings)


def test_csv_labels_1_and_1_point_0_and_padded_1_are_one_class_as_in_json_lines(tmp_path):
    path = write_rows(tmp_path / "train.csv", [("a", "1"), ("b", "1.0"), ("c", " 1 "), ("d", "0.0"), ("e", "-2.0")])
    frame, _, _ = _read(path, config_for(path), "train")
    assert sorted(frame["label"].unique()) == ["-2", "0", "1"]


def test_csv_labels_that_are_not_whole_numbers_stay_as_written(tmp_path):
    path = write_rows(tmp_path / "train.csv", [("a", "01"), ("b", "1.5"), ("c", "abc"), ("d", "1e3")])
    frame, _, _ = _read(path, config_for(path), "train")
    assert frame["label"].tolist() == ["01", "1.5", "abc", "1e3"]


def test_a_feedback_label_is_read_as_the_training_labels_are():
    task = get_task("text_classification")
    assert [task.feedback_label(None, v) for v in ("1.0", 1.0, " 1 ", "card_lost")] == ["1", "1", "1", "card_lost"]


def test_nul_bytes_removed_from_the_texts_are_counted_in_a_warning(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"text,label\n" + b"".join(b"text\x00 %d,%s\n" % (i, b"ab"[i % 2 : i % 2 + 1]) for i in range(20)))
    data = get_task("text_classification").prepare(config_for(path))
    assert f"{path}: 20 NUL bytes removed from the file" in data.warnings


def test_evaluating_a_file_of_only_unknown_labels_names_the_files_labels_and_the_models(tfidf_bundle, tmp_path):
    import modelyard

    path = tmp_path / "new.csv"
    path.write_text("text,category\nwhere is my parcel,parcel\nsend it back,returns\n")
    with pytest.raises(
        DataError, match="no row has a label the model knows; the file's labels: parcel, returns; the m"
    ):
        modelyard.load(tfidf_bundle).evaluate(str(path))


def test_a_files_label_1_matches_the_class_1_0_of_a_model_trained_before_labels_were_read_as_categories():
    import pandas as pd

    from modelyard.data.categories import as_known_labels

    found = as_known_labels(pd.Series(["1", " 0 ", 1.0, "x", None]), ["0.0", "1.0"])
    assert found.tolist() == ["1.0", "0.0", 1.0, "x", None]
