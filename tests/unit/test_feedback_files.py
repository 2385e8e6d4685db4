"""Feedback files are checked whole before anything is stored: an empty label, one prediction labelled two ways,
or a header naming a column twice is an error naming the lines, never a silently chosen or blank label."""

from __future__ import annotations

import pytest

from modelyard.errors import DataError
from modelyard.monitoring.feedback import read_rows


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("null.jsonl", '{"prediction_id": "a", "label": "x"}\n{"prediction_id": "b", "label": null}\n', "line 2"),
        ("blank.csv", "prediction_id,label\na,x\nb,  \n", "line 3: prediction 'b' has an empty label"),
        ("twice.csv", "prediction_id,label\na,x\nb,y\na,z\n", "lines 2 and 4: prediction 'a' is labelled 'x' and 'z'"),
        ("header.csv", "prediction_id,label,prediction_id\na,x,b\n", "names column 'prediction_id' more than once"),
    ],
)
def test_a_file_that_would_store_a_wrong_label_is_refused_whole(tmp_path, name, text, said):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=said):
        read_rows(path)


def test_the_same_label_given_twice_is_fine(tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("prediction_id,label\na,x\na,x\n")
    assert [(pid, label) for _, pid, label in read_rows(path)] == [("a", "x"), ("a", "x")]
