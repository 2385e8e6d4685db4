"""How `retrain` turns table feedback into training rows: matched on the model's feature columns, and the
challenger keeps the columns its champion dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelyard.monitoring.retrain import _row_keys, challenger_config, key_columns
from modelyard.tasks import config_from_dict, get_task


def _table(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    amount = rng.integers(1, 50, rows) * 1000
    return pd.DataFrame(
        {
            "ID": np.arange(1, rows + 1),
            "SEX": rng.choice([1, 2], rows),
            "AMOUNT": amount,
            "AGE": rng.integers(20, 70, rows),
            "default": (amount < 20000).astype(int),
        }
    )


def _config(path, train: str):
    data = {"train": train, "target_column": "default", "drop_columns": ["SEX"], "split": {"test": 0.2}}
    return config_from_dict(
        {"name": "t", "task": "tabular_classification", "data": data, "evaluation": {"groups": ["SEX"]}}, str(path)
    )


def test_a_logged_request_matches_the_test_row_it_is_though_it_carries_no_id_or_dropped_column():
    test = pd.DataFrame({"ID": [7, 8], "SEX": [2, 1], "AMOUNT": [20000, 5000], "AGE": [31, 40], "default": ["1", "0"]})
    logged = pd.DataFrame({"AMOUNT": [20000.0, 5000.0], "AGE": [" 31", 41], "default": ["1", "0"]})
    layout = {"label": "default", "columns": None, "keys": ["AMOUNT", "AGE"]}
    keys = key_columns(layout, list(test.columns))
    assert _row_keys(logged, keys).isin(set(_row_keys(test, keys))).tolist() == [True, False]


def test_without_keys_a_row_is_matched_on_every_column_but_the_label():
    assert key_columns({"label": "label", "columns": ["text", "label"]}, ["text", "label"]) == ["text"]


def test_the_challenger_keeps_the_id_column_its_champion_dropped_though_feedback_rows_leave_gaps_in_it(tmp_path):
    _table().to_csv(tmp_path / "t.csv", index=False)
    task = get_task("tabular_classification")
    config = _config(tmp_path / "t.yaml", str(tmp_path / "t.csv"))
    prepared = task.prepare(config)
    assert "ID" in prepared.report["dropped_columns"]
    layout = task.retrain_layout(config, prepared.report)
    assert sorted(layout["keys"]) == ["AGE", "AMOUNT"]
    feedback = pd.DataFrame({"AMOUNT": [3000, 40000], "AGE": [33, 52], "default": ["1", "0"]})  # a request's columns
    columns = list(prepared.splits["test"].columns)
    train = pd.concat([prepared.splits["train"], feedback.reindex(columns=columns)], ignore_index=True)
    folder = tmp_path / "challenger"
    folder.mkdir()
    splits = prepared.splits
    challenger = challenger_config(config, folder, train, splits["validation"], splits["test"], layout)
    report = task.prepare(challenger).report
    assert "ID" not in report["column_types"] and "ID" in report["dropped_columns"]
    assert sorted(report["column_types"]) == ["AGE", "AMOUNT"]
