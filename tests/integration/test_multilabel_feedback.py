"""Production feedback for a multi-label model (GoEmotions slice, TF-IDF + one-vs-rest for speed): a correction is
a label SET, checked label by label where it arrives (/v1/feedback, `feedback import`), and `retrain` trains a
challenger with the corrected rows and gates it on micro F1 over the champion's frozen test split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from serving_helpers import serving

import modelyard
from modelyard.errors import DataError, UserError
from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, read_predictions
from modelyard.monitoring.retrain import retrain

SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "goemotions"
ROWS = {"train": 600, "validation": 200, "test": 200}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, modelyard.Model, pd.DataFrame]:
    """The config, a TF-IDF multi-label bundle, and unseen training rows to come back as corrected traffic."""
    folder = tmp_path_factory.mktemp("ml-feedback")
    for name, n in ROWS.items():
        pd.read_csv(SLICE / f"{name}.csv").head(n).to_csv(folder / f"{name}.csv", index=False)
    config = {
        "name": "ml-feedback",
        "task": "multilabel_classification",
        "data": {"train": "train.csv", "validation": "validation.csv", "test": "test.csv", "label_column": "labels"},
        "model": {"backbone": "tfidf-linear"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    model = modelyard.train(folder / "config.yaml", output=folder / "bundle", quiet=True, track=False)
    unseen = pd.read_csv(SLICE / "train.csv").iloc[ROWS["train"] : ROWS["train"] + 40].reset_index(drop=True)
    return folder / "config.yaml", model, unseen


def _log(model: modelyard.Model, texts: list[str]) -> list[str]:
    """`texts` as predictions the server logged for `model` (what /v1/predict stores)."""
    ids = [f"ml{i}" for i in range(len(texts))]
    writer = PredictionLogWriter()
    writer.append([PredictionRecord(p, 1000.0 + i, model.name, "1", t, {}, 1.0) for i, (p, t) in enumerate(
        zip(ids, texts, strict=True))])  # fmt: skip
    writer.close()
    return ids


def test_label_sets_are_imported_from_lists_and_separated_cells_and_an_unknown_label_is_named(setup, tmp_path):
    _, model, unseen = setup
    ids = _log(model, unseen["text"].head(3).tolist())
    (tmp_path / "fb.jsonl").write_text(
        json.dumps({"prediction_id": ids[0], "label": ["joy", "admiration"]})
        + "\n"
        + json.dumps({"prediction_id": ids[1], "label": "gratitude|love"})
        + "\n"
    )
    assert import_feedback(tmp_path / "fb.jsonl", str(model.path))["imported"] == 2
    stored = read_predictions(model=model.name).set_index("prediction_id")["label"]
    assert json.loads(stored[ids[0]]) == ["admiration", "joy"] and json.loads(stored[ids[1]]) == ["gratitude", "love"]

    pd.DataFrame({"prediction_id": [ids[2]], "label": ["joy|jolly"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match=r"bad.csv, line 2: label 'jolly' is not one of the model's \d+ labels"):
        import_feedback(tmp_path / "bad.csv", str(model.path))
    (tmp_path / "empty.jsonl").write_text(json.dumps({"prediction_id": ids[2], "label": []}) + "\n")
    with pytest.raises(DataError, match=r"empty.jsonl, line 1: an empty label set"):
        import_feedback(tmp_path / "empty.jsonl", str(model.path))
    assert pd.isna(read_predictions(model=model.name).set_index("prediction_id")["label"][ids[2]])


def test_the_server_takes_a_label_set_and_names_the_label_it_does_not_know(setup):
    _, model, _ = setup
    with serving(model.path) as client:
        answer = client.post("/v1/predict", json={"inputs": ["Thank you so much!"]}).json()
        pid = answer["prediction_ids"][0]
        bad = client.post("/v1/feedback", json={"prediction_id": pid, "label": ["gratitude", "thankful"]})
        good = client.post("/v1/feedback", json={"prediction_id": pid, "label": ["gratitude", "joy"]})
    assert bad.status_code == 422 and "'thankful' is not one of the model's" in bad.json()["error"]["message"]
    assert good.status_code == 200
    assert json.loads(read_predictions(model=model.name)["label"].iloc[0]) == ["gratitude", "joy"]


@pytest.mark.slow
def test_retrain_learns_from_label_sets_and_gates_on_micro_f1_over_the_frozen_test_split(setup, tmp_path):
    config, model, unseen = setup
    ids = _log(model, unseen["text"].tolist())
    rows = [{"prediction_id": p, "label": labels.split("|")} for p, labels in zip(ids, unseen["labels"], strict=True)]
    (tmp_path / "fb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_feedback(tmp_path / "fb.jsonl", str(model.path))

    decision = retrain(config, str(model.path), output=tmp_path / "challenger")
    assert decision["metric"] == "micro_f1"
    assert decision["feedback"] == {
        "used_for_training": 30,
        "held_out": 10,
        "held_out_in_training_data": 0,
        "in_test_split": 0,
        "skipped": 0,
    }
    old, new = decision["champion"], decision["challenger"]
    metrics = json.loads((model.path / "metrics.json").read_text())["test"]
    assert old["micro_f1"] == pytest.approx(metrics["micro_f1"]) and "subset_accuracy" in new
    assert set(old["per_class_f1"]) == set(model.labels)
    assert old["feedback"]["samples"] == new["feedback"]["samples"] == 10 and "micro_f1" in new["feedback"]
    assert decision["promoted"] is (new["micro_f1"] > old["micro_f1"])
    after = json.loads((Path(new["path"]) / "data_report.json").read_text())["splits"]["train"]
    assert after == ROWS["train"] + 30
