"""Image classification end to end: ImageNet predictions, a tiny real training run, bundle, base64."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import shared_dataset
from image_helpers import colour_squares, train_squares
from PIL import Image

import modelyard
from modelyard.api import validate
from modelyard.data.images import load_image
from modelyard.errors import DataError
from modelyard.learners.image_inputs import preprocessing_for
from modelyard.tasks import config_from_dict


def test_bee_photos_are_imagenet_class_309_with_the_original_head():
    from modelyard.models.efficientnet import imagenet_model

    bees = sorted((shared_dataset("hymenoptera_data") / "val" / "bees").glob("*.jpg"))[:24]
    transform = preprocessing_for("efficientnet-lite0", 224, "none").eval_transform()
    with torch.no_grad():
        logits = imagenet_model().eval()(torch.stack([transform(load_image(p)) for p in bees]))
    assert (logits.argmax(1) == 309).float().mean() >= 0.7  # 83% over all 83 validation bees


@pytest.fixture(scope="module")
def squares_bundle(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("squares")
    colour_squares(folder / "data", per_class=10)
    (folder / "data" / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    return train_squares(folder, epochs=5)  # one epoch (3 steps) still predicts one colour for everything


@pytest.mark.slow
def test_training_writes_a_bundle_with_the_eval_transform_and_a_baseline(squares_bundle):
    path = squares_bundle.path
    prep = json.loads((path / "preprocessing.json").read_text())
    assert (prep["image_size"], prep["resize"], prep["mean"]) == (16, 16, [0.5, 0.5, 0.5])
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == 1.0  # reddish against bluish squares: the frozen features get 1.0 too
    assert metrics["baselines"]["frozen_features"]["validation"]["accuracy"] == 1.0
    assert squares_bundle.labels == ["blue", "red"]


@pytest.mark.slow
def test_predictions_from_paths_and_base64_agree(squares_bundle, tmp_path):
    Image.new("RGB", (40, 48), (230, 30, 40)).save(tmp_path / "red.png")
    encoded = base64.b64encode((tmp_path / "red.png").read_bytes()).decode()
    from_path = squares_bundle.predict([str(tmp_path / "red.png")], top_k=2)[0]
    learner = squares_bundle.learner
    from_base64 = squares_bundle.predict([learner.parse_input(encoded)], top_k=2)[0]
    assert squares_bundle.predict([encoded], top_k=2)[0] == from_base64
    assert from_path["label"] == from_base64["label"]
    assert from_path["score"] == pytest.approx(from_base64["score"], abs=1e-6)
    assert [p["label"] for p in from_path["probabilities"]] == [from_path["label"]] + [
        label for label in ("blue", "red") if label != from_path["label"]
    ]


@pytest.mark.slow
def test_a_reloaded_bundle_predicts_exactly_as_after_training(squares_bundle, tmp_path):
    image = Image.new("RGB", (40, 48), (20, 40, 220))
    again = modelyard.load(squares_bundle.path)
    assert again.predict([image])[0] == squares_bundle.predict([image])[0]


@pytest.mark.slow
@pytest.mark.parametrize("bad", [b"", b"not an image", "not base64!", "aGVsbG8="])
def test_invalid_request_images_raise_value_error(squares_bundle, bad):
    with pytest.raises(ValueError):
        squares_bundle.learner.parse_input(bad)


@pytest.mark.slow
def test_data_urls_and_raw_bytes_are_accepted(squares_bundle):
    buffer = io.BytesIO()
    Image.new("L", (9, 9), 200).save(buffer, format="PNG")
    data = buffer.getvalue()
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert squares_bundle.learner.parse_input(url).mode == "RGB"
    assert squares_bundle.learner.parse_input(data).size == (9, 9)


def test_a_folder_of_tiny_images_chooses_cnn_scratch_and_says_why(tmp_path):
    colour_squares(tmp_path / "data", per_class=4, size=(8, 8))
    config = config_from_dict(
        {"name": "tiny", "task": "image_classification", "data": {"train": str(tmp_path / "data")}}
    )
    report = validate(config).report
    assert report["backbone"]["name"] == "cnn-scratch"
    assert "tiny images" in report["backbone"]["reason"]


def test_one_class_says_whether_the_others_were_unreadable(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=4, size=(8, 8))
    for path in (root / "blue").iterdir():
        path.write_bytes(b"not an image")
    config = config_from_dict({"name": "one", "task": "image_classification", "data": {"train": str(root)}})
    one_readable = r"only one class \('red'\) has usable images; 4 files were skipped, e\.g\. blue/"
    with pytest.raises(DataError, match=one_readable):
        validate(config)
    for path in (root / "blue").iterdir():
        path.unlink()
    (root / "blue").rmdir()
    with pytest.raises(DataError, match=r"only one class \('red'\)\n"):
        validate(config)


def test_colour_photos_choose_efficientnet(tmp_path):
    colour_squares(tmp_path / "data", per_class=4, size=(60, 80))
    config = config_from_dict(
        {"name": "photos", "task": "image_classification", "data": {"train": str(tmp_path / "data")}}
    )
    assert validate(config).report["backbone"]["name"] == "efficientnet-lite0"


@pytest.mark.slow
def test_the_server_answers_base64_json_and_uploads_and_rejects_bad_images(squares_bundle, tmp_path):
    from serving_helpers import serving

    buffer = io.BytesIO()
    Image.new("RGB", (40, 48), (230, 30, 40)).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    with serving(squares_bundle.path) as client:
        ok = client.post("/v1/predict", json={"inputs": [encoded], "top_k": 2})
        upload = client.post("/v1/predict/upload", files={"files": ("red.png", buffer.getvalue(), "image/png")})
        bad = client.post("/v1/predict", json={"inputs": [base64.b64encode(b"not an image").decode()]})
        info = client.get("/v1/model").json()
    assert ok.status_code == 200
    assert ok.json()["predictions"][0]["label"] in ("red", "blue")
    assert upload.json()["predictions"][0]["label"] == ok.json()["predictions"][0]["label"]
    assert bad.status_code == 422
    assert "inputs.0" in bad.json()["error"]["message"]
    assert "upload" in info["capabilities"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelyard", *args], capture_output=True, text=True, timeout=300)


def _mixed_folder(root):
    """Two good images, and a corrupt, a truncated, an empty and a non-image file with image names."""
    root.mkdir()
    Image.new("RGB", (40, 48), (230, 30, 40)).save(root / "red.png")
    Image.new("RGB", (40, 48), (20, 40, 220)).save(root / "nested-blue.jpg", quality=95)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buffer, format="JPEG")
    (root / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("this is text, not a picture")
    return root


@pytest.mark.slow
def test_predict_on_a_folder_skips_each_bad_image_by_name_and_predicts_the_rest(squares_bundle, tmp_path):
    folder = _mixed_folder(tmp_path / "photos")
    result = _cli("predict", str(squares_bundle.path), "--image", str(folder))
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert sorted(Path(a["input"]).name for a in answers) == ["nested-blue.jpg", "red.png"]
    assert all(a["label"] in ("blue", "red") for a in answers)
    skipped = [line for line in result.stderr.splitlines() if line.startswith("warning skipped ")]
    reasons = {Path(line.split()[2].rstrip(":")).name: line for line in skipped}
    assert set(reasons) == {"truncated.jpg", "corrupt.png", "empty.jpg", "notes.png"}
    assert "truncated" in reasons["truncated.jpg"] and "empty" in reasons["empty.jpg"]
    assert "corrupt" in reasons["corrupt.png"] or "not an image" in reasons["corrupt.png"]
    assert "not an image" in reasons["notes.png"]
    assert "predicted 2 of 6 images; skipped 4 unusable" in result.stderr


@pytest.mark.slow
def test_predict_on_a_folder_of_only_bad_images_fails_with_one_clear_message(squares_bundle, tmp_path):
    folder = _mixed_folder(tmp_path / "photos")
    (folder / "red.png").unlink()
    (folder / "nested-blue.jpg").unlink()
    result = _cli("predict", str(squares_bundle.path), "--image", str(folder))
    assert result.returncode == 1
    assert "error: none of the 4 image file(s) could be read" in result.stderr
    assert result.stderr.count("warning skipped ") == 4
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_predict_input_reads_paths_from_the_files_folder_and_names_each_unusable_row(squares_bundle, tmp_path):
    (tmp_path / "lists").mkdir()
    _mixed_folder(tmp_path / "lists" / "photos")
    rows = ["photos/red.png", "photos/empty.jpg", "photos/nested-blue.jpg", "photos/gone.jpg"]
    (tmp_path / "lists" / "t.csv").write_text("image,label\n" + "".join(f"{r},red\n" for r in rows))
    out = tmp_path / "p.csv"
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", "predict", str(squares_bundle.path), "--input", "lists/t.csv", "-o", out],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the CSV's folder: its paths must not be read from here
    )
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out)
    assert scored["image"].tolist() == ["photos/red.png", "photos/nested-blue.jpg"]
    assert set(scored["label"]) <= {"blue", "red"}
    warning = " ".join(result.stderr.split())
    assert "lists/t.csv: 2 rows not scored, their file cannot be used: line 3: " in warning
    assert "photos/empty.jpg: empty" in warning and "line 5: " in warning and "gone.jpg: unreadable" in warning
    assert "wrote 2 predictions" in result.stderr
