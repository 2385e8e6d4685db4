"""Object detection end to end on the committed raccoon slice: train, evaluate (mAP), predict and draw, reload,
serve `/v1/predict`, and export to int8 ONNX with the mAP parity check."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

import modelyard
from modelyard.export.exporter import export
from tests.integration.serving_helpers import serving

MINI = Path(__file__).resolve().parents[2] / "examples" / "data" / "raccoon_mini"
IMAGE = MINI / "images" / "raccoon-106.jpg"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> modelyard.Model:
    root = tmp_path_factory.mktemp("detection")
    config = root / "config.yaml"
    config.write_text(
        f"""name: raccoon-mini
task: object_detection
data:
  annotations: {MINI}
  train: {MINI / "train.txt"}
  test: {MINI / "test.txt"}
  classes: [raccoon]
  split: {{validation: 0.2, seed: 0}}
model: {{image_size: 64, min_score: 0.0}}
train: {{epochs: 1, batch_size: 8}}
"""
    )
    return modelyard.train(config, root / "bundle", quiet=True, track=False)


def test_training_writes_map_metrics_for_validation_and_test(bundle):
    import json

    metrics = json.loads((bundle.path / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert {"map50", "map50_95", "per_class", "confusion"} <= set(metrics[split])
        assert 0.0 <= metrics[split]["map50_95"] <= metrics[split]["map50"] <= 1.0
    assert metrics["test"]["images"] == 6 and metrics["test"]["confusion"]["labels"] == ["raccoon", "background"]


def test_predictions_are_boxes_inside_the_image_and_a_reload_gives_the_same(bundle):
    answer = bundle.predict([str(IMAGE)])[0]
    assert answer["detections"], "min_score 0 keeps every decoded peak"
    width, height = bundle.learner.to_image(str(IMAGE)).size
    for det in answer["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert det["label"] == "raccoon" and 0 <= det["score"] <= 1
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    assert modelyard.load(bundle.path).predict([str(IMAGE)])[0] == answer


def test_predict_image_prints_boxes_and_draws_them(bundle, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelyard",
            "predict",
            str(bundle.path),
            "--image",
            str(IMAGE),
            "--draw",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert '"detections"' in done.stdout and '"box"' in done.stdout
    drawn = list(tmp_path.glob("*.png"))
    assert [p.name for p in drawn] == ["0000-raccoon-106.png"]


def test_predict_input_scores_a_files_usable_images_and_draws_them(bundle, tmp_path):
    (tmp_path / "lists" / "sub").mkdir(parents=True)
    (tmp_path / "lists" / "sub" / "photo.jpg").write_bytes(IMAGE.read_bytes())
    (tmp_path / "lists" / "rows.csv").write_text("image,id\nsub/photo.jpg,1\nsub/missing.jpg,2\n")
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "predict", str(bundle.path), "--input", "lists/rows.csv", "--draw", "d"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the file's folder: its paths start at the file's folder
    )
    assert done.returncode == 0, done.stderr
    assert '"detections"' in done.stdout and "1 rows not scored" in done.stderr and "missing.jpg" in done.stderr
    assert [p.name for p in (tmp_path / "d").glob("*.png")] == ["0000-photo.png"]


def test_the_server_returns_boxes_with_scores(bundle):
    with serving(bundle.path) as client:
        reply = client.post("/v1/predict", json={"inputs": [base64.b64encode(IMAGE.read_bytes()).decode()]})
        assert reply.status_code == 200, reply.text
        detections = reply.json()["predictions"][0]["detections"]
        assert detections and {"label", "score", "box"} == set(detections[0]) and len(detections[0]["box"]) == 4
        bad = client.post("/v1/predict", json={"inputs": ["bm90IGFuIGltYWdl"]})
        assert bad.status_code == 422 and "error" in bad.json()


def test_the_server_refuses_feedback_on_boxes_as_not_labels(bundle):
    with serving(bundle.path) as client:
        reply = client.post("/v1/predict", json={"inputs": [base64.b64encode(IMAGE.read_bytes()).decode()]})
        given = {"prediction_id": reply.json()["prediction_ids"][0], "label": "raccoon"}
        feedback = client.post("/v1/feedback", json=given)
    assert feedback.status_code == 422 and "not labels (boxes)" in feedback.json()["error"]["message"]


def test_worst_images_carry_true_and_predicted_boxes(bundle):
    splits = bundle.task.prepare(bundle.config).splits
    worst = bundle.learner.worst_images(splits["test"], 3)
    assert len(worst) == 3 and all(w["truth"] and "predicted" in w for w in worst)
    assert [w["f1"] for w in worst] == sorted(w["f1"] for w in worst)


def test_int8_onnx_export_reports_map_parity(bundle, tmp_path):
    result = export(bundle.path, "onnx", "int8", tmp_path / "onnx", force=True, latency_samples=2)
    assert result.report["accuracy"]["metric"] == "map50"
    assert {"original", "exported"} <= set(result.report["accuracy"])
    exported = modelyard.load(result.path)
    assert exported.manifest["runtime"] == "onnxruntime"
    assert "detections" in exported.predict([str(IMAGE)])[0]


def test_the_parity_gate_fails_a_detector_whose_boxes_moved(bundle):
    """The score margin forgives threshold jitter, not worse boxes: a copy whose box head is off (centres two
    cells away, boxes 2.7x larger: what a broken export would answer) fails the gate on agreement."""
    import copy

    import torch

    from modelyard.export import parity
    from modelyard.learners.detection import DetectorLearner

    learner = bundle.learner
    broken = DetectorLearner(copy.deepcopy(learner.module), learner.labels, learner.spec, learner.options)
    with torch.no_grad():
        broken.module.box[-1].bias += torch.tensor([1.0, 1.0, 2.0, 2.0])
    validation = bundle.task.prepare(bundle.config).splits["validation"]
    report = parity.compare(learner, broken, ("validation", validation), latency_samples=1)
    assert report["parity"]["agreement"] < 0.5
    assert any(p.startswith("agreement") for p in parity.problems(report, parity.Tolerance()))
    same = parity.compare(learner, learner, ("validation", validation), latency_samples=1)
    assert parity.problems(same, parity.Tolerance()) == []


def test_the_report_shows_map_and_the_worst_images_with_their_boxes(bundle, tmp_path):
    from modelyard.evaluation.report import write_report

    html = write_report(bundle.path, tmp_path / "report.html").read_text()
    assert "mAP@0.5" in html and "Worst test images" in html
    assert html.count("data:image/jpeg;base64,") >= 6


def test_evaluate_data_scores_a_resized_copy_like_the_original_and_a_set_without_boxes(bundle, tmp_path):
    from PIL import Image

    names = [line.strip() for line in (MINI / "test.txt").read_text().splitlines() if line.strip()]
    for folder, scale in (("same", 1), ("up2", 2)):
        (tmp_path / folder / "images").mkdir(parents=True)
        for name in names:
            xml = (MINI / "annotations" / f"{Path(name).stem}.xml").read_text()
            (tmp_path / folder / f"{Path(name).stem}.xml").write_text(xml)
            with Image.open(MINI / "images" / name) as image:
                image.resize((image.width * scale, image.height * scale)).save(tmp_path / folder / "images" / name)
    same, up2 = bundle.evaluate(tmp_path / "same"), bundle.evaluate(tmp_path / "up2")
    assert abs(same["map50"] - up2["map50"]) < 0.1 and any("scaled to the image" in n for n in up2["notes"])
    for xml in (tmp_path / "same").glob("*.xml"):
        text = xml.read_text()
        xml.write_text(text[: text.index("<object>")] + "</annotation>")
    background = bundle.evaluate(tmp_path / "same")
    assert background["boxes"] == 0 and "confusion" in background
