"""A LightGBM regressor on scikit-learn's diabetes table retrained from production feedback: the corrected values
are numbers, the gate is the task's own rmse (lower is better) on the frozen test split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes

import modelyard
from modelyard.errors import DataError
from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord
from modelyard.monitoring.retrain import decide, retrain

TARGET = "target"
OVERRIDES = ["train.time_limit_s=15"]


@pytest.fixture
def config(tmp_path) -> Path:
    load_diabetes(as_frame=True).frame.to_csv(tmp_path / "diabetes.csv", index=False)
    config = {
        "name": "diabetes-progression",
        "task": "tabular_regression",
        "data": {"train": "diabetes.csv", "target_column": TARGET, "split": {"validation": 0.2, "test": 0.2}},
        "model": {"backbone": "lightgbm"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "config.yaml"


def _log(bundle, frame: pd.DataFrame, prefix: str) -> list[str]:
    """`frame`'s rows as predictions the server logged for `bundle` (what /v1/predict stores)."""
    rows = json.loads(frame.drop(columns=[TARGET]).to_json(orient="records"))
    ids = [f"{prefix}{i}" for i in range(len(rows))]
    writer = PredictionLogWriter()
    writer.append([PredictionRecord(p, 1000.0 + i, bundle.name, "1", r, {}, 1.0) for i, (p, r) in enumerate(
        zip(ids, rows, strict=True))])  # fmt: skip
    writer.close()
    return ids


def test_numeric_corrections_join_training_and_the_gate_compares_rmse_on_the_frozen_test_split(config, tmp_path):
    from modelyard.tracking import registry

    bundle = modelyard.train(config, output=tmp_path / "bundle", overrides=OVERRIDES, quiet=True)
    splits = bundle.task.prepare(bundle.config).splits
    in_test = splits["test"].head(12)  # logged rows that are test rows: never trained on
    fresh = splits["train"].head(28).assign(age=lambda f: pd.to_numeric(f["age"]) + 0.001)  # new applicants
    logged = pd.concat([in_test, fresh], ignore_index=True)
    ids = _log(bundle, logged, "p")
    pd.DataFrame({"prediction_id": ids, "label": pd.to_numeric(logged[TARGET]) + 5.0}).to_csv(
        tmp_path / "fb.csv", index=False
    )
    import_feedback(tmp_path / "fb.csv", str(bundle.path))  # a CSV stores each value as text: "156.0"
    decision = retrain(config, str(bundle.path), margin=0.5, overrides=OVERRIDES, output=tmp_path / "challenger")
    assert decision["feedback"] == {"used_for_training": 18, "held_out": 10, "in_test_split": 12, "skipped": 0}
    assert decision["metric"] == "rmse"
    old, new = decision["champion"], decision["challenger"]
    assert old["samples"] == new["samples"] == len(splits["test"])
    assert old["rmse"] == pytest.approx(json.loads((bundle.path / "metrics.json").read_text())["test"]["rmse"])
    assert old["feedback"]["samples"] == new["feedback"]["samples"] == 10 and "rmse" in new["feedback"]
    assert decision["promoted"] is (new["rmse"] < old["rmse"] - 0.5)
    assert "lower is better" in decision["reason"]
    before = json.loads((bundle.path / "data_report.json").read_text())["splits"]["train"]
    after = json.loads((Path(new["path"]) / "data_report.json").read_text())["splits"]["train"]
    assert after == before + 18
    aliases = registry.describe(bundle.name).aliases
    assert aliases["challenger"] == new["version"]
    assert (aliases.get("champion") == new["version"]) is decision["promoted"]


def test_a_correction_that_is_not_a_number_is_refused_naming_its_prediction(config, tmp_path):
    bundle = modelyard.train(config, output=tmp_path / "bundle", overrides=OVERRIDES, quiet=True)
    frame = load_diabetes(as_frame=True).frame.head(3)
    ids = _log(bundle, frame, "req-")
    pd.DataFrame({"prediction_id": ids, "label": ["140", "about 200", "90.5"]}).to_csv(tmp_path / "fb.csv", index=False)
    import_feedback(tmp_path / "fb.csv", str(bundle.path))
    with pytest.raises(DataError, match=r"prediction 'req-1'.*'about 200' of 'target' is not a number"):
        retrain(config, str(bundle.path), overrides=OVERRIDES, output=tmp_path / "challenger")
    assert not (tmp_path / "challenger").exists()


def test_the_gate_reads_an_error_metric_as_lower_is_better():
    champion = {"rmse": 50.0, "per_class_f1": {}, "feedback": {"rmse": 40.0, "samples": 30}}
    better = {"rmse": 48.0, "per_class_f1": {}, "feedback": {"rmse": 39.0, "samples": 30}}
    assert decide(champion, better, "rmse", 1.0, [], False, "rmse")[0] is True
    assert decide(champion, {**better, "rmse": 49.5}, "rmse", 1.0, [], False, "rmse")[0] is False
    assert decide(champion, {**better, "rmse": 52.0}, "rmse", 0.0, [], False, "rmse")[0] is False
    promoted, reason = decide(
        champion, {**better, "feedback": {"rmse": 45.0, "samples": 30}}, "rmse", 1.0, [], False, "rmse"
    )
    assert promoted is False and reason.startswith("worse on recent feedback: rmse 45.0000")
