"""A LightGBM credit model on the committed 2,000-row slice: batch files are checked against the training schema
like `/v1/predict` rows, and production feedback retrains it through the champion/challenger gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import modelyard
from modelyard.cli import app
from modelyard.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SLICE = EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv"
TARGET = "default.payment.next.month"
OVERRIDES = ["model.backbone=lightgbm", "train.time_limit_s=15"]
pytestmark = pytest.mark.slow  # one LightGBM training run shared by the module, one more for the challenger


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("credit")
    shutil.copy(EXAMPLES / "credit_scoring.yaml", folder / "credit.yaml")
    shutil.copytree(EXAMPLES / "data" / "credit_default", folder / "data" / "credit_default")
    return folder / "credit.yaml"


@pytest.fixture(scope="module")
def bundle(config):
    return modelyard.train(config, output=config.parent / "bundle", overrides=OVERRIDES, quiet=True)


def test_a_batch_file_reports_rows_that_break_the_schema_per_chunk_and_in_a_summary(bundle, tmp_path):
    from modelyard.batch import score_file

    frame = pd.read_csv(SLICE).astype({"LIMIT_BAL": object})
    frame.loc[[2, 450], "LIMIT_BAL"] = "a lot"  # a word for a number: scored as missing, like /v1/predict's 422
    frame.loc[4, "EDUCATION"] = 42  # a category never seen in training: scored as "other"
    frame["NOTE"] = "x"
    frame.to_csv(tmp_path / "rows.csv", index=False)
    warnings: list[str] = []
    done = score_file(bundle, tmp_path / "rows.csv", tmp_path / "out.parquet", 300, warnings.append)
    assert done["rows"] == len(pd.read_parquet(tmp_path / "out.parquet")) == 2000
    assert done["schema"]["wrong_type"] == {"LIMIT_BAL": {"rows": 2, "first_rows": [3, 451]}}
    known = bundle.learner.spec.encoder.categories["EDUCATION"]  # rare codes (0, 5, 6) share "other" too
    rare = [i + 1 for i, v in enumerate(frame["EDUCATION"]) if str(v) not in known]
    assert 5 in rare and done["schema"]["unseen"]["EDUCATION"] == {"rows": len(rare), "first_rows": rare[:5]}
    assert done["schema"]["unknown_columns"] == ["NOTE"]
    assert any("rows 1-300:" in w and "LIMIT_BAL: 1 (" in w and "EDUCATION" in w and "rows 3)" in w for w in warnings)
    assert any("rows 301-600" in w and "LIMIT_BAL: 1" in w and "rows 451" in w for w in warnings)


def test_a_batch_file_without_a_required_column_is_refused_naming_it(bundle, tmp_path):
    from modelyard.batch import score_file

    pd.read_csv(SLICE).drop(columns=["PAY_0"]).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(DataError, match="'PAY_0'"):
        score_file(bundle, tmp_path / "rows.csv", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    cli = ["predict", str(bundle.path), "--input", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "o.csv")]
    result = CliRunner().invoke(app, cli)  # `modelyard.cli.main` prints a DataError as one line, exit code 1
    assert result.exit_code == 1 and isinstance(result.exception, DataError) and "PAY_0" in str(result.exception)
    assert not (tmp_path / "o.csv").exists()


def test_feedback_rows_join_the_training_split_and_the_gate_uses_the_frozen_test_split(bundle, config):
    from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, record_feedback
    from modelyard.monitoring.retrain import retrain
    from modelyard.tracking import registry

    splits = bundle.task.prepare(bundle.config).splits
    in_test = splits["test"].head(12)  # logged rows that are test rows: never trained on
    fresh = splits["train"].head(28).assign(AGE=lambda f: pd.to_numeric(f["AGE"]) + 1)  # new rows
    logged = pd.concat([in_test, fresh], ignore_index=True)
    features = list(bundle.learner.spec.encoder.types)  # what a client sends: no ID, no dropped SEX
    assert "ID" not in features and "SEX" not in features
    rows = json.loads(logged[features].to_json(orient="records"))
    writer = PredictionLogWriter()
    writer.append([PredictionRecord(f"p{i}", 1000.0 + i, bundle.name, "1", row, {}, 1.0) for i, row in enumerate(rows)])
    writer.close()
    for i, label in enumerate(logged[TARGET]):
        assert record_feedback(f"p{i}", label)
    decision = retrain(config, str(bundle.path), overrides=OVERRIDES, output=config.parent / "challenger")
    assert decision["feedback"] == {
        "used_for_training": 18,
        "held_out": 10,
        "held_out_in_training_data": 0,
        "in_test_split": 12,
        "skipped": 0,
    }
    assert decision["metric"] == "roc_auc"
    assert decision["champion"]["samples"] == decision["challenger"]["samples"] == len(splits["test"])
    before = json.loads((bundle.path / "data_report.json").read_text())["splits"]["train"]
    after = json.loads((Path(decision["challenger"]["path"]) / "data_report.json").read_text())["splits"]["train"]
    assert after == before + 18
    challenger = json.loads((Path(decision["challenger"]["path"]) / "data_report.json").read_text())
    assert list(challenger["column_types"]) == features  # the ID the champion dropped is no feature of it either
    aliases = registry.describe(bundle.name).aliases
    assert aliases["challenger"] == decision["challenger"]["version"]
    assert (aliases.get("champion") == decision["challenger"]["version"]) is decision["promoted"]


def test_lightgbm_is_bagged_into_fold_models_saved_as_text_and_explained_by_their_mean(bundle):
    spec = json.loads((bundle.path / "tabular.json").read_text())
    files = spec["members"]["lightgbm"]["files"]
    assert len(files) == 5 and all((bundle.path / f).read_text().startswith("tree") for f in files)
    row = {"LIMIT_BAL": 20000, "EDUCATION": 2, "AGE": 24, "PAY_0": 2, "PAY_2": 2}
    explained = bundle.learner.explain(row, label="1")
    x = bundle.learner.spec.encoder.transform(pd.DataFrame([row]))
    raw = [m.predict(x, raw_score=True)[0] for m in bundle.learner.booster.models]
    assert explained["output"] == pytest.approx(sum(raw) / len(raw), abs=1e-6)
    assert sum(explained["attributions"]) + explained["baseline_output"] == pytest.approx(explained["output"], abs=1e-5)
