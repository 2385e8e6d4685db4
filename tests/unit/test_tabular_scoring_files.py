"""What a table model's config may ask of its threshold, and how `evaluate --data` reads a scoring file: the
checks of what a model can learn from are training's, not a scoring file's (the committed credit slice)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelyard.config import Config
from modelyard.errors import ConfigError, DataError
from modelyard.tasks import _tabular as common
from modelyard.tasks import config_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CREDIT = EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv"
TARGET = "default.payment.next.month"


def credit_config(**changes: dict) -> Config:
    raw = yaml.safe_load((EXAMPLES / "credit_scoring.yaml").read_text(encoding="utf-8"))
    raw["data"]["train"] = str(CREDIT)
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_dict(raw)


def test_costs_and_a_target_recall_together_are_refused_naming_both():
    config = credit_config(evaluation={"target_recall": 0.8})
    with pytest.raises(ConfigError, match=r"evaluation\.costs and evaluation\.target_recall"):
        common.prepare(config, "classification")


def test_threshold_keys_on_a_target_of_several_classes_are_refused_naming_them():
    config = credit_config(data={"target_column": "EDUCATION", "column_types": {}, "drop_columns": []})
    with pytest.raises(ConfigError, match=r"evaluation\.costs, data\.positive_label apply to a two-class target"):
        common.prepare(config, "classification")


def test_a_scoring_file_of_one_class_without_the_group_column_and_labels_written_1_0_is_read_as_it_is(tmp_path):
    frame = pd.read_csv(CREDIT)
    ones = frame[frame[TARGET] == 1].drop(columns=["SEX"]).astype({TARGET: float})
    ones.to_csv(tmp_path / "defaults.csv", index=False)  # cells 1.0, one class, no SEX (a group, not a feature)
    rows, notes = common.evaluation_rows(credit_config(), str(tmp_path / "defaults.csv"), ["0", "1"])
    assert len(rows) == len(ones) and set(rows[TARGET]) == {"1"}
    assert notes == [f"{tmp_path / 'defaults.csv'}: no column SEX: its group metrics (evaluation.groups) are left out"]


def test_a_regression_scoring_file_with_one_target_value_is_scored_and_non_numbers_are_dropped_and_counted(tmp_path):
    frame = pd.read_csv(CREDIT).iloc[:50].assign(LIMIT_BAL=20000.0).astype({"LIMIT_BAL": object})
    frame.loc[3, "LIMIT_BAL"] = "n/a"
    frame.to_csv(tmp_path / "flat.csv", index=False)
    config = credit_config(data={"target_column": "LIMIT_BAL", "positive_label": None}, evaluation={"costs": None})
    rows, notes = common.evaluation_rows(config, str(tmp_path / "flat.csv"), [])
    assert len(rows) == 49 and notes[0].endswith("1 rows dropped: target 'LIMIT_BAL' is not a finite number")


def test_metrics_of_rows_of_one_class_mark_roc_auc_undefined_and_keep_recall():
    from modelyard.data import tabular
    from modelyard.learners.tabular import TabularLearner, TabularSpec
    from modelyard.learners.tabular_encoding import TabularEncoder

    frame = pd.read_csv(CREDIT, dtype=str)
    types, _ = tabular.infer_types(frame, TARGET, {}, [])
    spec = TabularSpec("binary", TARGET, ["0", "1"], TabularEncoder.fit(frame, types, [TARGET]))
    learner = TabularLearner(spec, "lightgbm", {"folds": 1, "calibration": "none", "seed": 0})
    learner.fit(frame.iloc[:1500], frame.iloc[1500:])
    metrics = learner.evaluate(frame[frame[TARGET] == "1"])
    assert "roc_auc" not in metrics and "one class only ('1')" in metrics["undefined"]["roc_auc"]
    assert 0 < metrics["recall"] < 1 and metrics["precision"] == 1.0 and np.isfinite(metrics["brier"])


def test_carved_rows_equal_to_training_rows_are_counted_and_kept(tmp_path):
    pd.concat([pd.read_csv(CREDIT, dtype=str)] * 3).to_csv(tmp_path / "thrice.csv", index=False)
    config = credit_config(data={"train": str(tmp_path / "thrice.csv")})
    prepared = common.prepare(config, "classification")
    assert sum(prepared.report["splits"].values()) == 6000  # kept: equal rows can be real cases
    test = prepared.report["splits"]["test"]
    shared = [w for w in prepared.warnings if w.startswith(f"test (carved from {tmp_path / 'thrice.csv'})")]
    assert shared and f"of {test} rows equal a training row in every column" in shared[0]


def test_rows_of_a_given_test_file_equal_to_training_rows_are_counted(tmp_path):
    frame = pd.read_csv(CREDIT, dtype=str)
    frame.iloc[:1500].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[1400:].to_csv(tmp_path / "test.csv", index=False)  # 100 rows in both files
    config = credit_config(data={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")})
    warnings = common.prepare(config, "classification").warnings
    said = re.search(r"test\.csv \(test\): (\d+) of 600 rows equal a training row in every column", " ".join(warnings))
    assert said and 80 <= int(said[1]) <= 100  # those of the 100 that stayed in the train split (validation is carved)


def test_a_target_written_1_0_by_pandas_trains_the_classes_0_and_1(tmp_path):
    frame = pd.read_csv(CREDIT).head(600)
    frame[TARGET] = frame[TARGET].astype(float)  # a column with a gap: pandas writes 1.0 and 0.0
    frame.to_csv(tmp_path / "floats.csv", index=False)
    config = credit_config(data={"train": str(tmp_path / "floats.csv"), "positive_label": "1.0"})
    prepared = common.prepare(config, "classification")
    assert prepared.report["classes"] == ["0", "1"]
    assert set(prepared.splits["test"][TARGET]) == {"0", "1"}


def test_a_named_test_file_of_classes_train_lacks_is_refused(tmp_path):
    frame = pd.read_csv(CREDIT)
    frame.head(100).assign(**{TARGET: 7}).to_csv(tmp_path / "test.csv", index=False)
    config = credit_config(data={"test": str(tmp_path / "test.csv")})
    with pytest.raises(DataError, match=r"test\.csv \(data\.test\): none of its 100 rows has a label"):
        common.prepare(config, "classification")
