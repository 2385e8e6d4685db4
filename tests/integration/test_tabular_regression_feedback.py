"""A LightGBM regressor on scikit-learn's diabetes table retrained from production feedback: the corrected values
are numbers, the gate is the task's own rmse (lower is better) on the frozen test split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes

import modelyard
from modelyard.errors import DataError
from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, read_predictions, record_feedback
from modelyard.monitoring.retrain import decide, retrain

TARGET = "target"
OVERRIDES = ["train.time_limit_s=15"]


def _write_config(folder: Path) -> Path:
    load_diabetes(as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    config = {
        "name": "diabetes-progression",
        "task": "tabular_regression",
        "data": {"train": "diabetes.csv", "target_column": TARGET, "split": {"validation": 0.2, "test": 0.2}},
        "model": {"backbone": "lightgbm"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


@pytest.fixture
def config(tmp_path) -> Path:
    return _write_config(tmp_path)


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
    assert decision["feedback"] == {
        "used_for_training": 18,
        "held_out": 10,
        "held_out_in_training_data": 0,
        "in_test_split": 12,
        "skipped": 0,
    }
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


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, modelyard.Model]:
    """One regressor for the label checks below (they train nothing more)."""
    folder = tmp_path_factory.mktemp("diabetes")
    path = _write_config(folder)
    return path, modelyard.train(path, output=folder / "bundle", overrides=OVERRIDES, quiet=True, track=False)


def _labels() -> list:
    return [None if pd.isna(v) else json.loads(v) for v in read_predictions()["label"]]


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        (
            "fb.csv",
            "prediction_id,label\nreq-0,140\nreq-1,about 200\nreq-2,90.5\n",
            "line 3: the corrected value 'about 200'",
        ),
        ("fb.csv", "prediction_id,label\nreq-0,140\nreq-1,inf\n", "line 3: the corrected value 'inf'"),
        (
            "fb.jsonl",
            '{"prediction_id": "req-0", "label": 140}\n{"prediction_id": "req-1", "label": true}\n',
            "line 2: the corrected value True",
        ),
    ],
    ids=["csv-word", "csv-inf", "jsonl-boolean"],
)
def test_feedback_import_refuses_a_correction_that_is_not_a_finite_number_naming_line_and_value(
    shared, tmp_path, name, content, where
):
    _, bundle = shared
    _log(bundle, load_diabetes(as_frame=True).frame.head(3), "req-")
    (tmp_path / name).write_text(content)
    message = rf"{name}, {re.escape(where)} of 'target' is not a number; nothing was imported"
    with pytest.raises(DataError, match=message):
        import_feedback(tmp_path / name, str(bundle.path))
    assert _labels() == [None, None, None]


def test_feedback_import_stores_a_regressors_corrections_as_numbers(shared, tmp_path):
    _, bundle = shared
    _log(bundle, load_diabetes(as_frame=True).frame.head(2), "req-")
    (tmp_path / "fb.csv").write_text("prediction_id,label\nreq-0, 140 \nreq-1,90.5\n")
    assert import_feedback(tmp_path / "fb.csv", str(bundle.path))["imported"] == 2
    assert _labels() == [140.0, 90.5]


def test_v1_feedback_answers_422_naming_a_correction_that_is_not_a_number_and_stores_numbers(shared):
    from serving_helpers import serving

    _, bundle = shared
    row = json.loads(load_diabetes(as_frame=True).frame.drop(columns=[TARGET]).head(1).to_json(orient="records"))
    with serving(bundle.path) as client:
        pid = client.post("/v1/predict", json={"rows": row}).json()["prediction_ids"][0]
        for bad in ("about 200", "nan", [1, 2]):
            refused = client.post("/v1/feedback", json={"prediction_id": pid, "label": bad})
            assert refused.status_code == 422
            assert f"the corrected value {bad!r} of 'target' is not a number" in refused.json()["error"]["message"]
        unknown = client.post("/v1/feedback", json={"prediction_id": "nobody", "label": "about 200"})
        assert unknown.status_code == 404
        assert client.post("/v1/feedback", json={"prediction_id": pid, "label": "152.5"}).status_code == 200
    assert _labels() == [152.5]


def test_retrain_refuses_a_stored_correction_that_is_not_a_number_naming_its_prediction(shared, tmp_path):
    path, bundle = shared
    ids = _log(bundle, load_diabetes(as_frame=True).frame.head(3), "req-")
    for pid, label in zip(ids, ["140", "about 200", "90.5"], strict=True):  # stored before the import checked
        record_feedback(pid, label)
    with pytest.raises(DataError, match=r"prediction 'req-1'.*'about 200' of 'target' is not a number"):
        retrain(path, str(bundle.path), overrides=OVERRIDES, output=tmp_path / "challenger")
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
