"""The prediction log: served predictions land in SQLite, feedback joins them, monitoring reads them."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from serving_helpers import serving

from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.prediction_log import (
    PredictionLogWriter,
    PredictionRecord,
    db_path,
    read_predictions,
    record_feedback,
)


def predict(client, *texts: str) -> dict:
    response = client.post("/v1/predict", json={"inputs": list(texts)})
    assert response.status_code == 200
    return response.json()


def test_every_prediction_is_logged_with_model_version_input_output_and_latency(tfidf_bundle):
    with serving(tfidf_bundle) as client:
        body = predict(client, "where is my card", "exchange rate please")
    rows = read_predictions()
    assert list(rows["prediction_id"]) == body["prediction_ids"]
    assert set(rows["model"]) == {body["model"]["name"]} and set(rows["version"]) == {body["model"]["version"]}
    assert [json.loads(x) for x in rows["input"]] == ["where is my card", "exchange rate please"]
    assert [json.loads(x) for x in rows["output"]] == body["predictions"]
    assert (rows["latency_ms"] > 0).all() and rows["label"].isna().all()


def test_no_log_inputs_keeps_only_the_input_hash(tfidf_bundle):
    with serving(tfidf_bundle, log_inputs=False) as client:
        predict(client, "a private message")
    row = read_predictions().iloc[0]
    assert row["input"] is None
    assert row["input_sha256"] == hashlib.sha256(json.dumps("a private message").encode()).hexdigest()


def test_feedback_is_stored_on_the_logged_prediction(tfidf_bundle):
    with serving(tfidf_bundle) as client:
        body = predict(client, "my card still has not arrived")
        label = client.get("/v1/model").json()["labels"][0]
        response = client.post("/v1/feedback", json={"prediction_id": body["prediction_ids"][0], "label": label})
    assert response.status_code == 200 and response.json()["recorded"] is True
    assert json.loads(read_predictions().iloc[0]["label"]) == label


def test_a_class_sent_as_a_json_number_is_stored_as_the_models_label_text(banking_slice, tmp_path):
    """{"label": 1}, {"label": 1.0} and `feedback import`'s "1.0" are the class "1", as evaluate reads them, so the
    bandit, monitor and retrain agree on it."""
    import pandas as pd
    import yaml

    import modelyard

    train = pd.read_csv(banking_slice / "train.csv")
    codes = {name: i for i, name in enumerate(sorted(train["category"].unique()))}
    train.assign(category=train["category"].map(codes)).to_csv(tmp_path / "train.csv", index=False)
    config = {
        "name": "numbered",
        "task": "text_classification",
        "data": {"train": "train.csv", "text_column": "text", "label_column": "category"},
        "model": {"backbone": "tfidf-linear"},
    }
    (tmp_path / "numbered.yaml").write_text(yaml.safe_dump(config))
    bundle = modelyard.train(tmp_path / "numbered.yaml", output=tmp_path / "b", quiet=True, track=False).path
    with serving(bundle) as client:
        ids = predict(client, "my card still has not arrived", "a new card", "rates?")["prediction_ids"]
        for prediction_id, label in zip(ids, [1, 1.0], strict=False):
            response = client.post("/v1/feedback", json={"prediction_id": prediction_id, "label": label})
            assert response.status_code == 200
    (tmp_path / "feedback.csv").write_text(f"prediction_id,label\n{ids[2]},2.0\n")
    assert import_feedback(tmp_path / "feedback.csv", str(bundle))["imported"] == 1
    assert [json.loads(x) for x in read_predictions()["label"]] == ["1", "1", "2"]


def test_feedback_for_an_unknown_prediction_is_a_404(tfidf_bundle):
    with serving(tfidf_bundle) as client:
        label = client.get("/v1/model").json()["labels"][0]
        response = client.post("/v1/feedback", json={"prediction_id": "0" * 32, "label": label})
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"


def test_feedback_with_a_label_the_model_does_not_know_is_a_422(tfidf_bundle):
    with serving(tfidf_bundle) as client:
        body = predict(client, "hello")
        response = client.post("/v1/feedback", json={"prediction_id": body["prediction_ids"][0], "label": "nope"})
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_input"


def record(pid: str, model: str = "m", ts: float | None = None) -> PredictionRecord:
    return PredictionRecord(pid, ts or time.time(), model, "1", "text", {"label": "a"}, 1.0)


def test_read_predictions_filters_by_model_and_time(tmp_path):
    writer = PredictionLogWriter(db_path(tmp_path))
    writer.append([record("old", ts=100.0), record("new", ts=200.0), record("other", model="n", ts=300.0)])
    writer.close()
    assert list(read_predictions(since=150, model="m", directory=tmp_path)["prediction_id"]) == ["new"]
    assert len(read_predictions(directory=tmp_path)) == 3


def test_record_feedback_reports_whether_the_prediction_exists(tmp_path):
    writer = PredictionLogWriter(db_path(tmp_path))
    writer.append([record("known")])
    writer.close()
    assert record_feedback("known", "a", directory=tmp_path) is True
    assert record_feedback("unknown", "a", directory=tmp_path) is False


def test_reading_an_empty_home_gives_an_empty_table(tmp_path):
    assert read_predictions(directory=tmp_path).empty


@pytest.mark.parametrize("writers", [3])
def test_several_writers_append_to_one_log_without_losing_rows(tmp_path, writers):
    """Each writer has its own connection, as separate server processes do."""
    logs = [PredictionLogWriter(db_path(tmp_path)) for _ in range(writers)]

    def burst(index: int, log: PredictionLogWriter) -> None:
        for i in range(100):
            log.append([record(f"{index}-{i}")])

    threads = [threading.Thread(target=burst, args=(i, log)) for i, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    assert len(read_predictions(directory=tmp_path)) == writers * 100


def test_feedback_while_the_state_store_is_down_is_a_503_naming_it(tfidf_bundle, monkeypatch):
    from modelyard import state

    def down(path=None):
        raise state.StateUnavailable("MODELYARD_STATE_URI: cannot connect to postgresql://u:***@db:5432/x (refused)")

    with serving(tfidf_bundle) as client:
        body = predict(client, "my card still has not arrived")
        label = client.get("/v1/model").json()["labels"][0]
        monkeypatch.setattr(state, "connect", down)
        response = client.post("/v1/feedback", json={"prediction_id": body["prediction_ids"][0], "label": label})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["message"].startswith("MODELYARD_STATE_URI: cannot connect to postgresql://u:***@")
