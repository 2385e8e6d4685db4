"""Validation and test rows of a class train lacks: dropped and named, or refused when a named file keeps none."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from modelyard.errors import DataError
from modelyard.tasks._labels import drop_unseen_labels


def splits_of(validation: list[str], test: list[str]) -> dict[str, pd.DataFrame]:
    return {
        "train": pd.DataFrame({"label": ["a", "b"]}),
        "validation": pd.DataFrame({"label": validation}),
        "test": pd.DataFrame({"label": test}),
    }


def test_rows_of_a_class_train_lacks_are_dropped_and_named_per_split():
    splits, warnings = splits_of(["a", "c", "c"], ["b", "d"]), []
    drop_unseen_labels(splits, ["a", "b"], SimpleNamespace(validation=None, test=None), warnings)
    assert splits["validation"]["label"].tolist() == ["a"] and splits["test"]["label"].tolist() == ["b"]
    assert warnings == [
        "validation: 2 rows dropped: labels not in train (c)",
        "test: 1 rows dropped: labels not in train (d)",
    ]


def test_a_carved_split_left_empty_is_a_warning_but_a_named_file_left_empty_is_an_error():
    splits, warnings = splits_of(["c"], ["b"]), []
    drop_unseen_labels(splits, ["a", "b"], SimpleNamespace(validation=None, test=None), warnings)
    assert splits["validation"].empty and warnings
    with pytest.raises(DataError, match=r"holdout\.csv \(data\.validation\): none of its 1 rows .* its labels: c"):
        drop_unseen_labels(splits_of(["c"], ["b"]), ["a", "b"], SimpleNamespace(validation="holdout.csv"), [])
