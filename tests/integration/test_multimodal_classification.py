"""Multimodal classification end to end on the committed raccoon_framing slice (20 photos with notes): the three
heads compared in metrics.json, prediction from a CSV and over HTTP, and rows that cannot be used."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from serving_helpers import serving

import modelyard
from modelyard.errors import DataError
from modelyard.predict_io import read_inputs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTES = EXAMPLES / "data" / "raccoon_framing" / "notes.csv"
PHOTO = EXAMPLES / "data" / "raccoon_mini" / "images" / "raccoon-106.jpg"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> modelyard.Model:
    output = tmp_path_factory.mktemp("multimodal") / "bundle"
    config = EXAMPLES / "multimodal_classification.yaml"
    return modelyard.train(config, output=output, quiet=True, track=False)


def test_metrics_compare_image_only_text_only_and_fusion_on_the_same_test_rows(bundle):
    metrics = json.loads((bundle.path / "metrics.json").read_text())
    test = metrics["test"]
    assert set(test["modalities"]) == {"image_only", "text_only", "fusion"}
    assert test["modalities"]["fusion"] == {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"]}
    assert test["samples"] == 5  # a quarter of the 20 rows, as the example config asks
    assert "test" in metrics["baselines"]["tfidf_logreg_text"]
    assert bundle.manifest["backbone"] == "efficientnet-lite0+minilm-l6"


def test_evaluate_scores_any_labelled_file_on_all_three_heads(bundle, tmp_path):
    lines = NOTES.read_text().splitlines()
    rows = [line.replace("../raccoon_mini/", str(NOTES.parent.parent / "raccoon_mini") + "/") for line in lines[1:]]
    (tmp_path / "some.csv").write_text("\n".join([lines[0], *rows[:2], *rows[-2:]]) + "\n")
    scored = bundle.evaluate(tmp_path / "some.csv")  # `modelyard evaluate BUNDLE --data FILE`
    assert scored["samples"] == 4 and set(scored["modalities"]) == {"image_only", "text_only", "fusion"}


def test_evaluate_scores_a_file_of_one_class_and_names_the_rows_of_a_class_never_learnt(bundle, tmp_path):
    lines = NOTES.read_text().splitlines()
    rows = [line.replace("../raccoon_mini/", str(NOTES.parent.parent / "raccoon_mini") + "/") for line in lines[1:]]
    unknown = rows[0].replace(",close_up", ",aerial")
    (tmp_path / "close.csv").write_text("\n".join([lines[0], *rows[:3], unknown]) + "\n")
    scored = bundle.evaluate(tmp_path / "close.csv")  # training would refuse one class; scoring must not
    assert scored["samples"] == 3
    assert scored["notes"] == [f"{tmp_path / 'close.csv'}: 1 rows dropped: labels the model never saw (aerial)"]


def test_predict_from_a_csv_reads_image_paths_relative_to_that_file(bundle):
    warnings: list[str] = []
    inputs, frame = read_inputs(bundle, None, NOTES, warnings.append)
    assert warnings == []  # every row of the file is read
    answers = bundle.predict(inputs[:3], top_k=2)
    assert len(answers) == 3 and len(frame) == 20
    assert {a["label"] for a in answers} <= {"close_up", "wide"}
    assert set(answers[0]["modalities"]) == {"image_only", "text_only"}
    again = modelyard.load(bundle.path).predict(inputs[:3], top_k=2)
    assert [a["label"] for a in again] == [a["label"] for a in answers]
    assert [a["score"] for a in again] == pytest.approx([a["score"] for a in answers], abs=1e-6)
    with pytest.raises(DataError, match="rows with an image and a text"):
        bundle.predict(["a text without its image"])


def test_the_python_api_refuses_a_pil_image_with_a_blank_or_missing_text(bundle):
    from PIL import Image

    with Image.open(PHOTO) as photo:
        assert bundle.predict([{"image": photo, "text": "its face fills the whole picture"}])[0]["label"]
        with pytest.raises(DataError, match="text: Value error, blank"):
            bundle.predict([{"image": photo, "text": "  "}])
        with pytest.raises(DataError, match="text: Field required"):
            bundle.predict([{"image": photo}])


def test_the_server_takes_a_base64_image_and_a_text_and_refuses_a_row_without_text(bundle):
    image = base64.b64encode(PHOTO.read_bytes()).decode()
    local = bundle.predict([{"image": str(PHOTO), "text": "its face fills the whole picture"}])[0]
    with serving(bundle.path) as client:
        ok = client.post("/v1/predict", json={"inputs": [{"image": image, "text": "its face fills the whole picture"}]})
        missing = client.post("/v1/predict", json={"inputs": [{"image": image}]})
        blank = client.post("/v1/predict", json={"inputs": [{"image": image, "text": " "}]})
        long = client.post("/v1/predict", json={"inputs": [{"image": image, "text": "far away " * 3_400}]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["predictions"][0]["label"] == local["label"]
    assert ok.json()["predictions"][0]["score"] == pytest.approx(local["score"], abs=1e-5)
    assert missing.status_code == 422 and "text" in missing.json()["error"]["message"]
    assert blank.status_code == 422 and "text: Value error, blank" in blank.json()["error"]["message"]
    assert long.status_code == 422 and "at most 10000 characters" in long.json()["error"]["message"]


def test_predict_from_a_csv_names_each_row_without_a_usable_image_or_text(bundle, tmp_path):
    shutil.copy(PHOTO, tmp_path / "good.jpg")
    rows = ["photo,note", "good.jpg,close to the lens", "missing.jpg,far away", ",far away", "good.jpg,"]
    (tmp_path / "p1.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        read_inputs(bundle, None, tmp_path / "p1.csv", print)
    assert err.value.message == (
        f"{tmp_path / 'p1.csv'}: 3 unusable rows, nothing was predicted: "
        "line 3: image 'missing.jpg' missing: no such file; line 4: empty photo; line 5: empty note"
    )


def test_validate_names_each_row_whose_image_is_missing_or_corrupt(tmp_path):
    shutil.copy(PHOTO, tmp_path / "good.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    rows = ["photo,note,framing", "good.jpg,close to the lens,close_up", "gone.jpg,far away,wide"]
    (tmp_path / "notes.csv").write_text("\n".join([*rows, "broken.jpg,far away,wide", "good.jpg,,wide"]) + "\n")
    config = (
        (EXAMPLES / "multimodal_classification.yaml")
        .read_text()
        .replace("data/raccoon_framing/notes.csv", str(tmp_path / "notes.csv"))
    )
    (tmp_path / "config.yaml").write_text(config)
    with pytest.raises(DataError) as err:
        modelyard.validate(tmp_path / "config.yaml")
    message = err.value.message
    assert "4 unusable rows" not in message and "3 unusable rows" in message
    assert "line 3: image 'gone.jpg' missing" in message
    assert "line 4: image 'broken.jpg'" in message
    assert "line 5: empty note" in message


def test_validate_prints_both_resolved_encoders_and_the_training_label_counts(capsys):
    """docs/multimodal.md promised them; validate printed the splits, num_labels and leakage only."""
    from modelyard.commands.console import data_report

    data = modelyard.validate(EXAMPLES / "multimodal_classification.yaml")
    data_report(data)
    printed = capsys.readouterr().err
    assert "encoders {'image': 'efficientnet-lite0', 'text': 'minilm-l6'}" in printed
    assert "imbalance {'counts': {'close_up': 5, 'wide': 5}" in printed
    assert data.report["imbalance"]["counts"] == data.report["labels"]["train"]
