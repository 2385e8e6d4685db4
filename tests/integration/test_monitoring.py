"""Monitoring on real bundles: the reference profile, `monitor` over served traffic, and feedback import."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from serving_helpers import metric, serving

import modelyard
from modelyard.drift import reference
from modelyard.errors import UserError
from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.monitor import monitor, summarize
from modelyard.monitoring.prediction_log import (
    PredictionLogWriter,
    PredictionRecord,
    model_version,
    read_predictions,
    record_feedback,
)

TEXTS = [
    "where is my card",
    "my card has not arrived yet",
    "what is the exchange rate",
    "card payment declined",
    "how do I activate my card",
    "I was charged twice",
]


def serve_traffic(bundle, copies: int = 6) -> tuple[list[str], list[str]]:
    """Served predictions (ids, predicted labels) for TEXTS repeated `copies` times."""
    with serving(bundle) as client:
        body = client.post("/v1/predict", json={"inputs": TEXTS * copies}).json()
    return body["prediction_ids"], [p["label"] for p in body["predictions"]]


def test_a_trained_bundle_carries_a_checksummed_reference_profile(tfidf_bundle):
    manifest = json.loads((tfidf_bundle / "modelyard.json").read_text())
    assert reference.JSON_FILE in manifest["files"]
    profile = reference.read(tfidf_bundle).profile
    assert len(profile["lengths"]["counts"]) == len(profile["lengths"]["edges"]) + 1
    assert sum(profile["labels"]["distribution"].values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(profile["predicted"]["counts"].values()) == profile["sample"]["rows"]
    assert "no embed()" in profile["embeddings"]["skipped"]


def test_monitor_reports_traffic_latency_labels_drift_and_feedback(tfidf_bundle):
    ids, _ = serve_traffic(tfidf_bundle)
    report = monitor(str(tfidf_bundle))
    assert report["requests"] == len(ids) and report["window"]["predictions"] == len(ids)
    assert report["latency_ms"]["p95"] >= report["latency_ms"]["p50"] > 0
    assert sum(report["predicted_labels"].values()) == pytest.approx(1.0, abs=1e-3)
    drift = report["drift"]
    assert isinstance(drift["detected"], bool)
    for test in ("input_length", "predicted_labels"):
        assert {"statistic", "threshold", "detected"} <= set(drift[test])
    assert report["feedback"] == {"count": 0, "accuracy": None, "version": model_version(modelyard.load(tfidf_bundle))}


def test_feedback_import_stores_labels_and_monitor_reports_live_accuracy(tfidf_bundle, tmp_path):
    ids, labels = serve_traffic(tfidf_bundle, copies=1)
    wrong = next(
        x for x in sorted(set(json.loads((tfidf_bundle / "modelyard.json").read_text())["labels"])) if x != labels[1]
    )
    path = tmp_path / "feedback.csv"
    path.write_text(f"prediction_id,label\n{ids[0]},{labels[0]}\n{ids[1]},{wrong}\n")
    assert import_feedback(path, str(tfidf_bundle))["imported"] == 2
    stored = read_predictions().set_index("prediction_id")["label"]
    assert json.loads(stored[ids[0]]) == labels[0] and json.loads(stored[ids[1]]) == wrong
    assert monitor(str(tfidf_bundle))["feedback"]["count"] == 2
    assert monitor(str(tfidf_bundle))["feedback"]["accuracy"] == 0.5


def test_feedback_import_rejects_an_unknown_prediction_id_naming_its_line(tfidf_bundle, tmp_path):
    ids, labels = serve_traffic(tfidf_bundle, copies=1)
    path = tmp_path / "feedback.jsonl"
    path.write_text(
        json.dumps({"prediction_id": ids[0], "label": labels[0]})
        + "\n"
        + json.dumps({"prediction_id": "not-a-real-id", "label": labels[0]})
        + "\n"
    )
    with pytest.raises(UserError, match=r"line 2: unknown prediction_id 'not-a-real-id'"):
        import_feedback(path, str(tfidf_bundle))
    assert read_predictions()["label"].isna().all()  # all or nothing


def test_feedback_import_rejects_a_label_the_model_does_not_know(tfidf_bundle, tmp_path):
    ids, _ = serve_traffic(tfidf_bundle, copies=1)
    path = tmp_path / "feedback.csv"
    path.write_text(f"prediction_id,label\n{ids[0]},no_such_intent\n")
    with pytest.raises(UserError, match="line 2: label 'no_such_intent'"):
        import_feedback(path, str(tfidf_bundle))


def test_the_server_exports_drift_and_feedback_gauges_computed_in_the_background(tfidf_bundle):
    with serving(tfidf_bundle, drift_interval_s=0.2) as client:
        client.post("/v1/predict", json={"inputs": TEXTS * 6})
        deadline = time.monotonic() + 20
        while metric(client, "modelyard_drift_window").get("") != 36.0 and time.monotonic() < deadline:
            time.sleep(0.2)
        window = metric(client, "modelyard_drift_window")
        statistics = metric(client, "modelyard_drift_statistic")
        detected = metric(client, "modelyard_drift_detected")
    assert window == {"": 36.0}
    assert '{test="input_length"}' in statistics and '{test="predicted_labels"}' in statistics
    assert detected[""] in (0.0, 1.0)


def logged_rows(versions: dict[str, tuple[list, str]], model: str = "demo") -> pd.DataFrame:
    """Log rows of `model`: per version, its inputs each answered with one label; read back oldest first."""
    writer = PredictionLogWriter()
    records, ts = [], 1000.0
    for version, (inputs, label) in versions.items():
        for item in inputs:
            ts += 1
            records.append(PredictionRecord(f"p{ts}", ts, model, version, item, {"label": label}, 1.0))
    writer.append(records)
    writer.close()
    return read_predictions(model=model)


def test_drift_is_judged_on_the_versions_own_rows_and_says_how_many_of_the_others_were_left_out(tfidf_bundle):
    """A canary's challenger answering every input with one label is not the champion's predicted-label drift."""
    model = modelyard.load(tfidf_bundle)
    label = model.labels[0]
    rows = logged_rows({"1": (TEXTS * 6, label), "2": (TEXTS * 4, label), "3": (TEXTS * 6, model.labels[1])})
    everything = summarize(rows, reference.read(tfidf_bundle), model.learner, 1000)
    report = summarize(rows, reference.read(tfidf_bundle), model.learner, 1000, version="3")
    assert report["window"]["drift_left_out"] == {"1": 36, "2": 24} and everything["window"]["drift_left_out"] == {}
    assert (
        "judged on version 3's 36 predictions; left out 36 of version 1, 24 of version 2" in report["drift"]["reason"]
    )
    assert report["drift"]["predicted_labels"] != everything["drift"]["predicted_labels"]


def test_a_version_with_no_rows_in_the_window_is_not_judged_on_another_versions_traffic(tfidf_bundle):
    model = modelyard.load(tfidf_bundle)
    rows = logged_rows({"1": ([{"LIMIT_BAL": 20000, "AGE": 30}] * 40, "1")})  # a table model answered under this name
    report = summarize(rows, reference.read(tfidf_bundle), model.learner, 1000, version="3")
    assert report["drift"]["detected"] is None  # not judged, which is not "no drift"
    assert report["drift"]["reason"].startswith("no predictions of version 3 in the window, only 40 of version 1")
    mixed = summarize(rows, reference.read(tfidf_bundle), model.learner, 1000)["drift"]
    assert mixed["input_length"]["skipped"].startswith("the logged inputs are table rows, not text inputs")


def test_a_bundle_folder_never_served_is_not_judged_on_another_folders_traffic(tfidf_bundle):
    """An int8 export or a retrain under the same name reported the served bundle's requests, drift and live
    accuracy as its own."""
    model = modelyard.load(tfidf_bundle)
    rows = logged_rows({"sha256:5e21573cf3a8": (TEXTS * 6, model.labels[0])}, model=model.name)
    record_feedback(rows["prediction_id"][0], model.labels[0])
    report = monitor(str(tfidf_bundle))
    own = model_version(model)
    assert report["drift"]["detected"] is None
    assert report["drift"]["reason"].startswith(f"no predictions of version {own} in the window, only 36 of version")
    assert report["feedback"] == {"count": 0, "accuracy": None, "version": own}


def test_a_bundle_folder_served_through_the_registry_is_judged_on_its_version_saying_so(tfidf_bundle):
    model = modelyard.load(tfidf_bundle)
    logged_rows({"4": (TEXTS * 6, model.labels[0])}, model=model.name)
    report = monitor(str(tfidf_bundle))
    assert report["feedback"]["version"] == "4" and report["drift"]["detected"] is not None
    assert "taken to be registry version 4, the only one in the log" in report["drift"]["reason"]


def test_live_accuracy_is_that_of_the_judged_versions_own_answers(tfidf_bundle):
    """Under a canary each version's live accuracy blended both versions' answers."""
    model = modelyard.load(tfidf_bundle)
    right, wrong = model.labels[0], model.labels[1]
    rows = logged_rows({"1": (TEXTS, wrong), "2": (TEXTS, right)})
    for prediction_id in rows["prediction_id"]:
        record_feedback(prediction_id, right)
    rows = read_predictions(model="demo")
    judged = summarize(rows, reference.read(tfidf_bundle), model.learner, 1000, version="2")
    assert judged["feedback"] == {"count": len(TEXTS), "accuracy": 1.0, "version": "2"}
    assert judged["predicted_labels"] == {right: 1.0}  # version 1's answers are its own label mix, not this one's
    assert summarize(rows, reference.read(tfidf_bundle), model.learner, 1000)["feedback"]["accuracy"] == 0.5
