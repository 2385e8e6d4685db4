"""Exports of a real fine-tuned MiniLM bundle: ONNX, int8, the parity check, and distillation into a student."""

from __future__ import annotations

import json
import sys

import pytest

from modelyard import api, cli
from modelyard.errors import BundleError, UserError
from modelyard.export.distill import distill
from modelyard.export.exporter import export
from modelyard.export.parity import Tolerance

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
TEXTS = ["I lost my card", "how do I top up by bank transfer?"]


@pytest.fixture(scope="module")
def onnx_export(minilm_bundle, tmp_path_factory):
    return export(minilm_bundle, "onnx", None, tmp_path_factory.mktemp("x") / "onnx", latency_samples=3)


@pytest.fixture(scope="module")
def int8_export(minilm_bundle, tmp_path_factory):
    """Through the product's own parity gate, not past it: a refused export raises and fails every user of this."""
    return export(minilm_bundle, "onnx", "int8", tmp_path_factory.mktemp("x") / "int8", latency_samples=3)


def test_an_onnx_export_loads_as_a_bundle_that_answers_like_the_original(minilm_bundle, onnx_export):
    original, exported = api.load(minilm_bundle), api.load(onnx_export.path)
    assert exported.manifest["runtime"] == "onnxruntime" and exported.learner.module is None
    assert onnx_export.report["parity"]["agreement"] >= 0.98
    # the ONNX graph computes in fp32; the original predicts in bf16 where this CPU has fast bf16 kernels
    assert onnx_export.report["parity"]["max_abs_diff"] < (1e-4 if original.learner.precision == "fp32" else 2e-2)
    before, after = original.predict(TEXTS, top_k=3), exported.predict(TEXTS, top_k=3)
    assert [p["label"] for p in after] == [p["label"] for p in before]
    assert exported.evaluate()["accuracy"] == pytest.approx(original.evaluate()["accuracy"], abs=0.01)


def test_an_int8_onnx_export_is_much_smaller_and_passes_the_default_parity_gate(int8_export):
    report = int8_export.report
    assert report["quantize"] == "dynamic-int8" and report["passed"]
    assert report["parity"]["agreement"] >= Tolerance().min_agreement
    drop = report["accuracy"]["original"] - report["accuracy"]["exported"]
    assert drop <= Tolerance().max_accuracy_drop
    assert report["size_mb"]["exported"] < report["size_mb"]["original"] / 3
    assert api.load(int8_export.path).learner.embed(TEXTS).shape == (2, 384)


def test_an_exported_bundle_serves_predictions_over_http(int8_export):
    from serving_helpers import serving

    with serving(int8_export.path) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        body = client.post("/v1/predict", json={"inputs": TEXTS, "top_k": 2}).json()
    assert len(body["predictions"]) == 2 and len(body["predictions"][0]["probabilities"]) == 2


def test_export_json_holds_the_whole_comparison_table(int8_export):
    report = json.loads((int8_export.path / "export.json").read_text())
    assert {"format", "quantize", "size_mb", "parity", "accuracy", "latency_ms", "throughput"} <= set(report)
    for key in ("size_mb", "accuracy", "throughput"):
        assert set(report[key]) >= {"original", "exported"}
    assert set(report["parity"]) >= {"agreement", "max_abs_diff"}
    for side in ("original", "exported"):
        assert report["latency_ms"][side]["p50"] <= report["latency_ms"][side]["p95"]


def test_an_exported_bundle_with_a_changed_file_is_refused(onnx_export, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(onnx_export.path, copy)
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"checksum mismatch for model\.onnx"):
        api.load(copy)


def test_an_export_outside_the_tolerance_exits_1_with_the_numbers_and_writes_nothing(
    minilm_bundle, tmp_path, monkeypatch, capsys
):
    from modelyard.export import parity

    compare = parity.compare

    def disagreeing(*args, **kwargs):  # an export this small agrees 100%: make it disagree as int8 can
        return {**(found := compare(*args, **kwargs)), "parity": {**found["parity"], "agreement": 0.9}}

    monkeypatch.setattr(parity, "compare", disagreeing)
    target = tmp_path / "strict"
    argv = [
        "modelyard",
        "export",
        str(minilm_bundle),
        "--format",
        "onnx",
        "--output",
        str(target),
        "--latency-samples",
        "1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    message = " ".join(capsys.readouterr().err.split())  # rich wraps long lines at the console width
    assert "agreement 90.00% < 98.00%" in message and "--force" in message
    assert not target.exists() and not any(tmp_path.iterdir())


def test_an_int8_pytorch_export_stores_int8_weights_and_still_predicts(minilm_bundle, tmp_path):
    result = export(minilm_bundle, "torch", "int8", tmp_path / "int8", force=True, latency_samples=2)
    model = api.load(result.path)
    assert model.manifest["runtime"] == "torch" and model.manifest["quantize"] == "dynamic-int8"
    assert result.report["size_mb"]["exported"] < 0.7 * result.report["size_mb"]["original"]
    assert model.predict(TEXTS)[0]["label"] in model.labels and not model.learner.differentiable


def test_a_model_without_a_neural_network_cannot_be_exported(tfidf_bundle, tmp_path):
    with pytest.raises(UserError, match="cannot be exported to ONNX"):
        export(tfidf_bundle, "onnx", None, tmp_path / "x")


def test_distillation_trains_a_small_student_bundle_compared_with_its_teacher(minilm_bundle, tmp_path):
    # one epoch leaves this student at chance (agreement 0.19, accuracy 0.16 with 8 intents); ten learn something
    tiny = ["model.hidden_size=32", "model.layers=1", "model.heads=2"]
    overrides = [*tiny, "train.epochs=10", "train.learning_rate=3e-3"]
    result = distill(
        minilm_bundle, "scratch-transformer", tmp_path / "student", overrides=overrides, quiet=True, latency_samples=2
    )
    student = api.load(result.path)
    assert student.manifest["backbone"] == "scratch-transformer" and "distilled_from" in student.manifest
    assert student.labels == api.load(minilm_bundle).labels
    assert student.predict(TEXTS)[0]["label"] in student.labels
    report = json.loads((result.path / "distill.json").read_text())
    assert report["size_mb"]["student"] < report["size_mb"]["teacher"] / 10
    assert set(report["accuracy"]) == {"teacher", "student", "metric"}
    assert report["parity"]["agreement"] >= 0.2  # the teacher's top class: measured 0.25 (8 of 32), chance 0.125


def test_distilling_from_a_tfidf_teacher_says_why_it_cannot_teach(tfidf_bundle, tmp_path):
    from modelyard.errors import UserError

    with pytest.raises(UserError, match="gives distill no outputs") as found:
        distill(tfidf_bundle, output=tmp_path / "student")
    assert "neural classifier" in found.value.hint


def test_a_student_that_would_be_zero_shot_names_the_setting_to_change(minilm_bundle, tmp_path):
    from modelyard.errors import UserError

    with pytest.raises(UserError, match=r"zero-shot model \(model.zero_shot: true") as found:
        distill(minilm_bundle, "minilm-l6", output=tmp_path / "student", overrides=["model.zero_shot=true"])
    assert found.value.hint == "add --set model.zero_shot=false"
