"""Credit scoring end to end on the committed 2,000-row slice of the Taiwan credit-card default data: train with
backbone auto, then predict, explain, serve, export to ONNX, score a Parquet file in chunks, and check drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modelyard
from modelyard.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.slow  # one training run (LightGBM + MLP) shared by the module: about a minute
ROW = {"LIMIT_BAL": 20000, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 24, "PAY_0": 2, "PAY_2": 2, "BILL_AMT1": 3913}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("credit")
    shutil.copy(EXAMPLES / "credit_scoring.yaml", folder / "credit.yaml")
    shutil.copytree(EXAMPLES / "data" / "credit_default", folder / "data" / "credit_default")
    overrides = ["train.epochs=4", "train.time_limit_s=120"]
    return modelyard.train(folder / "credit.yaml", output=folder / "bundle", overrides=overrides, quiet=True)


def test_training_reports_risk_metrics_beside_the_scorecard_and_lightgbm_defaults(bundle):
    metrics = json.loads((bundle.path / "metrics.json").read_text())
    for name in ("roc_auc", "pr_auc", "ks", "gini", "brier"):
        assert 0 <= metrics["test"][name] <= 1
    assert metrics["test"]["gini"] == pytest.approx(2 * metrics["test"]["roc_auc"] - 1)
    assert metrics["test"]["roc_auc"] > 0.68  # 1,400 training rows; the full data reaches ~0.78
    assert {"scorecard", "lightgbm_default"} <= set(metrics["baselines"])
    points = metrics["baselines"]["scorecard"]["points"]
    assert {p["feature"] for p in points} >= {"PAY_0", "LIMIT_BAL"}
    assert metrics["test"]["groups"]["SEX"]["groups"].keys() == {"1", "2"}
    assert "minimum cost" in metrics["test"]["threshold_rule"]


def test_the_saved_threshold_decides_the_label(bundle):
    spec = json.loads((bundle.path / "tabular.json").read_text())
    cut = spec["threshold"]["threshold"]
    assert 0 < cut < 0.5  # a missed default costs 5x a declined client: flag below even odds
    [answer] = bundle.predict([ROW])
    assert answer["threshold"] == cut
    assert answer["label"] == ("1" if answer["probability"] >= cut else "0")


def test_rows_are_checked_against_the_training_schema(bundle):
    with pytest.raises(DataError, match="unknown column"):
        bundle.predict([{**ROW, "INCOME": 1}])
    with pytest.raises(DataError, match="LIMIT_BAL: expected a finite number"):
        bundle.predict([{**ROW, "LIMIT_BAL": "a lot"}])
    with pytest.raises(DataError, match="a row is an object of column: value, not str") as err:
        bundle.predict(["hello"])  # `modelyard predict BUNDLE --text hello`
    assert "--input rows.csv" in err.value.hint
    [answer] = bundle.predict([{**ROW, "EDUCATION": 42}])
    assert any("EDUCATION" in note and "other" in note for note in answer["notes"])


def test_evaluate_names_unseen_categories_and_the_card_names_the_training_file(bundle, tmp_path):
    frame = pd.read_csv(EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv").iloc[:200]
    frame.loc[:9, "EDUCATION"] = 42
    frame.to_csv(tmp_path / "new.csv", index=False)
    notes = bundle.evaluate(tmp_path / "new.csv")["notes"]
    assert f"{tmp_path / 'new.csv'}: EDUCATION: 10 rows with unseen categories, as 'other'" in notes
    card = (bundle.path / "MODEL_CARD.md").read_text()
    assert "credit_default_2000.csv |" in next(line for line in card.splitlines() if line.startswith("| train |"))


def test_reason_codes_are_tree_shap_values_that_add_up(bundle):
    from modelyard.evaluation.explain import explain

    found = explain(bundle, ROW)
    assert sum(found["attributions"]) == pytest.approx(found["output"] - found["baseline_output"], abs=1e-5)
    assert found["reasons_up"][0]["feature"] in found["features"]
    assert all(r["contribution"] > 0 for r in found["reasons_up"])


def test_server_predicts_rows_and_answers_bad_rows_with_422(bundle):
    from serving_helpers import serving

    with serving(bundle.path) as client:
        ok = client.post("/v1/predict", json={"rows": [ROW, {"AGE": 51}]})
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["predictions"]) == 2
        for bad in ({**ROW, "INCOME": 3200}, {**ROW, "AGE": "old"}, {**ROW, "AGE": [1, 2]}):
            response = client.post("/v1/predict", json={"rows": [bad]})
            assert response.status_code == 422, response.text
            assert "error" in response.json()
        huge = '{"rows": [{"AGE": %s}]}' % (10**400)  # JSON allows any integer; a float cannot hold it
        response = client.post("/v1/predict", content=huge, headers={"content-type": "application/json"})
        assert response.status_code == 422 and "inputs.0: AGE: expected a finite number" in response.text
        explained = client.post("/v1/explain", json={"input": ROW})
        assert explained.status_code == 200, explained.text
        assert explained.json()["reasons_up"]
        refused = client.post("/v1/explain", json={"input": {**ROW, "AGE": "old"}})
        assert refused.status_code == 422 and "input: AGE: expected a finite number" in refused.text


def test_onnx_export_keeps_the_probabilities(bundle):
    from modelyard.export.exporter import export

    result = export(bundle.path, "onnx", latency_samples=10)
    assert result.passed
    assert result.report["parity"]["max_abs_diff"] < 1e-4
    # the bagged fold models trained on the validation rows, so the answers compared are the test split's: the
    # labels served, at the saved threshold, scored as metrics.json scores them (not an in-sample accuracy)
    assert bundle.learner.fits_validation_rows and result.report["parity"]["split"] == "test"
    tested = json.loads((bundle.path / "metrics.json").read_text())["test"]["accuracy"]
    assert result.report["accuracy"]["original"] == pytest.approx(tested, abs=1e-4)
    exported = modelyard.load(result.path)
    assert exported.predict([ROW])[0]["probability"] == pytest.approx(bundle.predict([ROW])[0]["probability"], abs=1e-4)


def test_a_parquet_file_is_scored_in_chunks(bundle, tmp_path):
    from modelyard.batch import score_file

    frame = pd.read_csv(EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv")
    frame.to_parquet(tmp_path / "rows.parquet")
    done = score_file(bundle, tmp_path / "rows.parquet", tmp_path / "scored.parquet", chunk_rows=300)
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert done["rows"] == len(scored) == 2000
    first = bundle.predict(
        [json.loads(frame.drop(columns=["default.payment.next.month"]).iloc[:1].to_json(orient="records"))[0]]
    )
    assert scored["probability"].iloc[0] == pytest.approx(first[0]["probability"], abs=1e-6)


def test_monitor_flags_a_shifted_feature_by_psi(bundle):
    from modelyard.drift.reference import read
    from modelyard.monitoring.drift import drift

    frame = pd.read_csv(EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv").iloc[:300]
    rows = json.loads(frame.drop(columns=["default.payment.next.month"]).to_json(orient="records"))
    reference = read(bundle.path)
    calm = drift(reference, bundle.learner, rows, [])
    assert not calm["features"]["detected"]
    shifted = [{**r, "LIMIT_BAL": r["LIMIT_BAL"] * 10} for r in rows]
    found = drift(reference, bundle.learner, shifted, [])
    assert found["features"]["drifted"] == ["LIMIT_BAL"]
    assert "csi" in found["features"]["per_feature"]["LIMIT_BAL"]
    assert np.isfinite(found["features"]["per_feature"]["LIMIT_BAL"]["statistic"])


def test_monitor_reads_logged_rows_and_reports_feature_psi(bundle):
    from serving_helpers import serving

    from modelyard.monitoring.monitor import monitor

    frame = pd.read_csv(EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv").iloc[:60]
    rows = json.loads(frame.drop(columns=["default.payment.next.month", "ID"]).to_json(orient="records"))
    shifted = [{**r, "AGE": (r["AGE"] or 35) + 40} for r in rows]  # one AGE of the real data is missing
    with serving(bundle.path) as client:
        assert client.post("/v1/predict", json={"rows": shifted}).status_code == 200
    report = monitor(str(bundle.path))
    assert report["window"]["predictions"] == 60
    assert "AGE" in report["drift"]["features"]["drifted"]
    assert report["drift"]["detected"]
