"""Forecasting end to end through the Python API on a generated daily series (trend, weekly cycle, gaps)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import modelyard
from modelyard.errors import DataError

HORIZON = 7
CONTEXT = 14


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast")
    t = np.arange(240)
    rng = np.random.default_rng(0)
    values = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, len(t))
    frame = pd.DataFrame(
        {
            "day": pd.date_range("2023-01-01", periods=len(t), freq="D").strftime("%Y-%m-%d"),
            "sales": values.round(2),
        }
    )
    frame.drop(index=[30, 31, 100]).to_csv(folder / "sales.csv", index=False)  # three missing days
    config = {
        "name": "tiny-forecast",
        "task": "forecasting",
        "data": {
            "train": "sales.csv",
            "time_column": "day",
            "target_column": "sales",
            "split": {"validation": 0.1, "test": 0.15},
        },
        "model": {"horizon": HORIZON, "context_length": CONTEXT, "hidden_size": 16, "layers": 1},
        "train": {"max_steps": 60, "batch_size": 32},
    }
    (folder / "forecast.yaml").write_text(yaml.safe_dump(config))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 16-unit LSTM is fastest on one thread (and far faster on a busy machine)
    try:
        return modelyard.train(folder / "forecast.yaml", output=folder / "bundle", quiet=True)
    finally:
        torch.set_num_threads(threads)


def test_training_writes_lstm_metrics_beside_both_baselines(bundle):
    metrics = json.loads((bundle.path / "metrics.json").read_text())
    assert {"mae", "rmse", "mape", "mase"} <= set(metrics["test"])
    for baseline in ("naive", "seasonal_naive"):
        assert metrics["baselines"][baseline]["test"]["windows"] == metrics["test"]["windows"]
    assert metrics["baselines"]["seasonal_naive"]["test"]["mae"] < metrics["baselines"]["naive"]["test"]["mae"]


def test_the_data_report_names_the_filled_gaps_and_the_detected_season(bundle):
    report = json.loads((bundle.path / "data_report.json").read_text())
    assert report["gaps_filled"] == 3 and report["season_length"] == 7
    assert "2023-01-31" in report["series"]["(single)"]["missing_timestamps_examples"]
    assert any("filled by interpolate" in w for w in report["warnings"])


def test_a_loaded_bundle_forecasts_the_requested_horizon(bundle):
    model = modelyard.load(bundle.path)
    history = list(50 + 8 * np.sin(2 * np.pi * np.arange(30) / 7))
    direct, longer = model.predict([{"history": history}, {"history": history, "horizon": 20}])
    assert len(direct["forecast"]) == HORIZON and direct["recursive"] is False
    assert len(longer["forecast"]) == 20 and longer["recursive"] is True
    assert all(np.isfinite(longer["forecast"]))


def test_a_history_shorter_than_the_context_is_refused_with_the_reason(bundle):
    model = modelyard.load(bundle.path)
    with pytest.raises(DataError, match="context_length"):
        model.predict([{"history": [1.0, 2.0]}])


def test_the_server_answers_a_forecast_request_and_explains_a_short_history(bundle):
    from serving_helpers import serving

    with serving(bundle.path) as client:
        response = client.post("/v1/predict", json={"inputs": [{"history": [50.0] * CONTEXT, "horizon": 3}]})
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"][0]["forecast"]) == 3
        short = client.post("/v1/predict", json={"inputs": [{"history": [1.0, 2.0]}]})
        assert short.status_code == 422 and "context_length" in short.json()["error"]["message"]


def test_a_bundle_evaluates_on_another_file_of_the_same_series(bundle):
    metrics = modelyard.load(bundle.path).evaluate(bundle.config.data.train)
    assert metrics["windows"] > 100
    naive = json.loads((bundle.path / "metrics.json").read_text())["baselines"]["naive"]["test"]["mae"]
    assert metrics["mae"] < 0.5 * naive  # the weekly cycle (amplitude 8) that a naive forecast misses


def test_evaluating_a_file_shorter_than_context_plus_horizon_says_what_evaluate_needs(bundle, tmp_path):
    frame = pd.read_csv(bundle.config.data.train).head(CONTEXT + HORIZON - 1)
    frame.to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match=rf"short.csv: series \(single\) has {CONTEXT + HORIZON - 1} points") as err:
        modelyard.load(bundle.path).evaluate(tmp_path / "short.csv")
    assert f"needs {CONTEXT + HORIZON} per series (context_length {CONTEXT} + horizon {HORIZON})" in err.value.message


def test_predict_from_a_file_reads_one_request_per_row(bundle):
    model = modelyard.load(bundle.path)
    frame = pd.DataFrame({"history": [[50.0] * CONTEXT, "[60.0" + ", 61.0" * (CONTEXT - 1) + "]"], "horizon": [2, 3]})
    requests = model.task.inputs_from_frame(frame, model.config)
    assert [len(a["forecast"]) for a in model.predict(requests)] == [2, 3]


def test_the_report_puts_block_bootstrap_intervals_on_the_forecast_errors(bundle, monkeypatch):
    from modelyard.evaluation.report import render
    from modelyard.metrics import cost

    monkeypatch.setattr(cost, "TIME_BUDGET_S", 0.2)
    html = render(modelyard.load(bundle.path))
    mae = json.loads((bundle.path / "metrics.json").read_text())["test"]["mae"]
    assert f"scores mae {mae:.4f} (95% bootstrap interval" in html
    assert "circular block bootstrap over test forecast windows" in html
    assert '<section id="forecasting"' in html and "not available" not in html


def test_the_model_card_gives_the_test_errors_with_their_intervals(bundle):
    saved = json.loads((bundle.path / "metrics.json").read_text())["test_intervals"]
    card = (bundle.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert saved["method"].startswith("circular block bootstrap")
    assert f"[{saved['mae']['low']:.4f}, {saved['mae']['high']:.4f}]" in card


@pytest.fixture(scope="module")
def covariate_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast-cov")
    t = np.arange(120)
    frame = pd.DataFrame(
        {
            "day": pd.date_range("2023-01-01", periods=len(t), freq="D").strftime("%Y-%m-%d"),
            "sales": (50 + 8 * np.sin(2 * np.pi * t / 7)).round(2),
            "temp": (10 + np.cos(2 * np.pi * t / 7)).round(2),
        }
    )
    frame.to_csv(folder / "sales.csv", index=False)
    config = {
        "name": "tiny-forecast-cov",
        "task": "forecasting",
        "data": {"train": "sales.csv", "time_column": "day", "target_column": "sales", "covariate_columns": ["temp"]},
        "model": {"horizon": HORIZON, "context_length": CONTEXT, "hidden_size": 8, "layers": 1},
        "train": {"max_steps": 5, "batch_size": 32},
    }
    (folder / "forecast.yaml").write_text(yaml.safe_dump(config))
    return modelyard.train(folder / "forecast.yaml", output=folder / "bundle", quiet=True)


def test_a_model_with_covariates_serves_and_warms_up_with_them(covariate_bundle):
    from serving_helpers import serving

    request = {"history": [50.0] * CONTEXT, "covariates": [[10.0]] * CONTEXT, "horizon": 2}
    with serving(covariate_bundle.path) as client:
        assert client.get("/readyz").status_code == 200
        response = client.post("/v1/predict", json={"inputs": [request]})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"][0]["forecast"]) == 2


def test_the_server_refuses_covariates_for_a_model_without_them_and_feedback_on_a_forecast(bundle):
    from serving_helpers import serving

    history = [50.0] * CONTEXT
    with serving(bundle.path) as client:
        request = {"history": history, "covariates": [[1.0, 2.0]] * CONTEXT}
        extra = client.post("/v1/predict", json={"inputs": [request]})
        answer = client.post("/v1/predict", json={"inputs": [{"history": history}]}).json()
        feedback = client.post("/v1/feedback", json={"prediction_id": answer["prediction_ids"][0], "label": "51"})
    assert extra.status_code == 422 and "reads no covariates" in extra.json()["error"]["message"]
    assert feedback.status_code == 422 and "not labels" in feedback.json()["error"]["message"]


def test_predictions_written_as_json_lines_give_a_missing_id_as_null(bundle, tmp_path):
    from modelyard.predict_io import write_predictions

    model = modelyard.load(bundle.path)
    frame = pd.DataFrame({"history": [[50.0] * CONTEXT, [60.0] * CONTEXT], "id": ["(single)", np.nan]})
    write_predictions(tmp_path / "out.jsonl", frame, model.predict(model.task.inputs_from_frame(frame, model.config)))
    rows = [json.loads(line, parse_constant=pytest.fail) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == ["(single)", None]
