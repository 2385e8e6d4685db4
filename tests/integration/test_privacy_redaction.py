"""Personal data stays out of what leaves the user's control: the prediction log file, the HTML report, MLflow;
`validate` says which columns hold it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from serving_helpers import serving

import modelyard
from modelyard.evaluation.report import render
from modelyard.loader import load
from modelyard.monitoring.prediction_log import db_path, read_predictions

EMAIL, CARD, CN_ID = "li.na@example.com", "4111 1111 1111 1111", "11010519491231002X"

TRAIN = [
    *[(f"my card was lost number {i}", "card") for i in range(12)],
    *[(f"please refund the order {i}", "refund") for i in range(12)],
    *[(f"what is my balance today {i}", "balance") for i in range(12)],
]
# every test row says the other class's words, so each is a confident mistake the report shows
TEST = [
    (f"my card was lost, write to {EMAIL}", "refund"),
    (f"card stolen, it was {CARD}", "refund"),
    (f"lost card, my ID is {CN_ID}", "refund"),
    ("please refund the order", "card"),
]


def bundle_for(tmp_path: Path, privacy: dict | None = None) -> Path:
    pd.DataFrame(TRAIN, columns=["message", "intent"]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(TEST, columns=["message", "intent"]).to_csv(tmp_path / "test.csv", index=False)
    config = {
        "name": "pii-test",
        "task": "text_classification",
        "data": {"train": "train.csv", "test": "test.csv", "text_column": "message", "label_column": "intent"},
        "model": {"backbone": "tfidf-linear"},
        "train": {"epochs": 1},
        **({"privacy": privacy} if privacy is not None else {}),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def pii_bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pii")
    return modelyard.train(bundle_for(folder), output=folder / "bundle", quiet=True).path


def raw_log_bytes() -> bytes:
    """Every byte SQLite keeps for the log: the database file and, if one is left, its write-ahead log."""
    return b"".join(p.read_bytes() for p in db_path().parent.glob(db_path().name + "*"))


def test_a_served_email_card_number_and_chinese_id_never_reach_predictions_db(pii_bundle):
    text = f"mail {EMAIL}, card {CARD}, 身份证 {CN_ID}"
    with serving(pii_bundle) as client:
        response = client.post("/v1/predict", json={"inputs": [text]})
    assert response.status_code == 200
    raw = raw_log_bytes()
    for secret in (EMAIL, CARD, CARD.replace(" ", ""), CN_ID, "li.na"):
        assert secret.encode() not in raw
    assert json.loads(read_predictions().iloc[0]["input"]) == "mail <EMAIL>, card <CARD>, 身份证 <CN_ID>"


def test_store_false_keeps_the_answer_but_neither_the_input_nor_its_hash(pii_bundle):
    with serving(pii_bundle) as client:
        schema = client.get("/openapi.json").json()
        response = client.post("/v1/predict", json={"inputs": ["a private note xq7"], "store": False})
        upload = client.post(
            "/v1/predict/upload", files=[("files", ("n.txt", b"an uploaded note zk9"))], data={"store": "false"}
        )
        ids = [response.json()["prediction_ids"][0], upload.json()["prediction_ids"][0]]
    assert "store" in schema["components"]["schemas"]["PredictRequest"]["properties"]
    rows = read_predictions().set_index("prediction_id").loc[ids]
    assert rows["input"].isna().all() and (rows["input_sha256"] == "").all() and rows["output"].notna().all()
    assert b"xq7" not in raw_log_bytes() and b"zk9" not in raw_log_bytes()


def test_the_report_shows_example_rows_with_personal_data_replaced(pii_bundle):
    html = render(load(pii_bundle))
    assert "Most confident mistakes" in html
    for secret in (EMAIL, CARD, CN_ID):
        assert secret not in html
    assert "&lt;EMAIL&gt;" in html and "&lt;CARD&gt;" in html and "&lt;CN_ID&gt;" in html


def test_a_report_left_out_of_privacy_redact_shows_the_rows_as_they_are(tmp_path):
    bundle = modelyard.train(bundle_for(tmp_path, {"redact": ["log"]}), output=tmp_path / "b", quiet=True).path
    assert EMAIL in render(load(bundle))


def test_validate_names_the_column_and_the_rows_holding_personal_data(tmp_path):
    data = modelyard.validate(bundle_for(tmp_path))
    warnings = [w for w in data.warnings if w.startswith("personal data")]
    assert any("split test, column 'message'" in w and "email in 1 of 4 rows" in w for w in warnings), warnings
    assert any("card in 1 of 4 rows" in w and "cn_id in 1 of 4 rows" in w for w in warnings), warnings
    assert data.report["pii"]["test"]["columns"]["text"] == {"card": 1, "cn_id": 1, "email": 1}
    assert data.report["pii"]["train"]["columns"] == {}


@pytest.mark.slow  # trains a table model and logs it to MLflow: about 30 s
def test_mlflow_keeps_the_data_report_redacted_and_never_a_literal_salt(tmp_path):
    from mlflow import MlflowClient

    from modelyard.tracking import registry, runs, store

    rows = [{"amount": i % 50, "channel": "web" if i % 2 else "store", "late": int(i % 50 > 25)} for i in range(400)]
    for i, address in enumerate(["ann.lee@example.com", "bo.chen@example.org", "cy.wu@example.net"]):
        rows[i]["channel"] = address  # a few customers typed their e-mail into the channel field
    pd.DataFrame(rows).to_csv(tmp_path / "loans.csv", index=False)
    config = {
        "name": "pii-tabular",
        "task": "tabular_classification",
        "data": {"train": "loans.csv", "target_column": "late"},
        "model": {"backbone": "lightgbm"},
        "privacy": {"hash_salt": "pepper-123"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    bundle = modelyard.train(tmp_path / "config.yaml", output=tmp_path / "bundle", quiet=True).path
    assert "pepper-123" not in (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    own = (bundle / "data_report.json").read_text(encoding="utf-8")
    assert "@example." in own  # the bundle's own report names the rare categories as they are

    version = runs.log_bundle(bundle)
    client = MlflowClient(store.tracking_uri())
    logged = ""
    for artifact in ("data/report.json", "bundle/data_report.json"):
        logged += Path(client.download_artifacts(version.run_id, artifact, str(tmp_path))).read_text(encoding="utf-8")
    assert "example.com" not in logged and "example.org" not in logged
    assert logged.count("<EMAIL:") == 2 * own.count("@example.")  # each address, in both artifacts
    assert client.get_run(version.run_id).data.params["privacy.hash_salt"] == "<set>"
    home = Path(os.environ["MODELYARD_HOME"])
    holding = [p for p in home.rglob("*") if p.is_file() and b"pepper-123" in p.read_bytes()]
    assert holding == [], holding  # neither the run's bundle/config.yaml nor the logged model's copy
    assert "pepper-123" in (bundle / "config.yaml").read_text(encoding="utf-8")  # the bundle on disk is unchanged
    from_mlflow = load(registry._download_bundle(version.name, version))  # the copy another machine gets
    assert from_mlflow.config.privacy.hash_salt == "<set>"  # resealed: its checksums match; it predicts the same
    frame = pd.DataFrame(rows[:20]).drop(columns="late")
    assert from_mlflow.predict(frame) == load(bundle).predict(frame)


def test_outputs_kept_for_monitoring_are_redacted_too(tmp_path):
    from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord
    from modelyard.privacy import Redactor

    patterns = Redactor(kinds=("email", "phone"))
    writer = PredictionLogWriter(db_path(tmp_path), redact_inputs=patterns, redact_outputs=patterns)
    answer = {"text": "Sure, I will call 13800138000 and mail bo@example.org."}
    writer.append([PredictionRecord("p1", 1.0, "m", "1", "hi", answer, 1.0)])
    writer.close()
    row = read_predictions(directory=tmp_path).iloc[0]
    assert json.loads(row["output"]) == {"text": "Sure, I will call <PHONE> and mail <EMAIL>."}
