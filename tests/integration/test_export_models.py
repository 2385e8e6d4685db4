"""Exports of the other neural models: a CNN (static int8), an LSTM forecaster and the small GPT (dynamic int8).

Each exported bundle must load through `modelyard.load`, answer like the original and carry the whole table.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
import yaml
from image_helpers import colour_squares

import modelyard
from modelyard.export.exporter import export
from modelyard.export.parity import Tolerance

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
DESIGN_KEYS = {"format", "quantize", "size_mb", "parity", "accuracy", "latency_ms", "throughput"}


def ops(bundle) -> set[str]:
    return {node.op_type for node in onnx.load(str(bundle / "model.onnx")).graph.node}


def assert_full_table(path, metric: str) -> dict:
    report = json.loads((path / "export.json").read_text())
    assert set(report) >= DESIGN_KEYS and report["passed"]
    assert report["accuracy"]["metric"] == metric
    for key in ("size_mb", "accuracy", "throughput"):
        assert all(report[key][side] > 0 for side in ("original", "exported"))
    assert report["parity"]["agreement"] >= Tolerance().min_agreement  # what "passed" promises
    assert np.isfinite(report["parity"]["max_abs_diff"])
    for side in ("original", "exported"):
        assert 0 < report["latency_ms"][side]["p50"] <= report["latency_ms"][side]["p95"]
    return report


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("squares")
    colour_squares(folder / "data", per_class=12)
    config = {
        "name": "squares",
        "task": "image_classification",
        "data": {"train": "data", "split": {"validation": 0.25, "test": 0.2}},
        "model": {"backbone": "cnn-scratch", "image_size": 16, "widths": [8, 16, 16]},
        "train": {"epochs": 4, "batch_size": 4},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    return modelyard.train(folder / "c.yaml", output=folder / "bundle", quiet=True)


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("forecast")
    t = np.arange(200)
    values = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.5, len(t))
    days = pd.date_range("2023-01-01", periods=len(t), freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"day": days, "sales": values.round(2)}).to_csv(folder / "sales.csv", index=False)
    config = {
        "name": "tiny-forecast",
        "task": "forecasting",
        "data": {"train": "sales.csv", "time_column": "day", "target_column": "sales"},
        "model": {"horizon": 7, "context_length": 14, "hidden_size": 16, "layers": 1},
        "train": {"max_steps": 20, "batch_size": 32, "precision": "bf16"},
    }
    (folder / "f.yaml").write_text(yaml.safe_dump(config))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 16-unit LSTM is fastest on one thread
    try:
        return modelyard.train(folder / "f.yaml", output=folder / "bundle", quiet=True)
    finally:
        torch.set_num_threads(threads)


def test_a_cnn_exports_to_static_int8_onnx_that_predicts_like_the_original(squares, tmp_path):
    result = export(squares.path, "onnx", "int8", tmp_path / "int8", latency_samples=3)
    report = assert_full_table(result.path, "accuracy")
    assert report["quantize"] == "static-int8" and {"QuantizeLinear", "DequantizeLinear"} <= ops(result.path)
    exported = modelyard.load(result.path)
    assert exported.manifest["runtime"] == "onnxruntime" and not exported.learner.differentiable
    images = sorted(str(p) for p in (squares.path.parent / "data").rglob("*.png"))[::4]
    before, after = squares.learner.predict_proba(images), exported.learner.predict_proba(images)
    assert (before.argmax(1) == after.argmax(1)).all() and np.abs(before - after).max() < 0.05
    assert exported.evaluate()["accuracy"] == pytest.approx(squares.evaluate()["accuracy"], abs=0.01)
    assert exported.learner.embed(images[:2]).shape == (2, 16)


def test_a_cnn_int8_pytorch_export_keeps_its_convolutions_and_predicts(squares, tmp_path):
    result = export(squares.path, "torch", "int8", tmp_path / "torch-int8", latency_samples=2)
    exported = modelyard.load(result.path)
    assert exported.manifest["quantize"] == "dynamic-int8" and result.report["parity"]["agreement"] == 1.0
    image = sorted((squares.path.parent / "data" / "red").glob("*.png"))[0]
    assert exported.predict([str(image)])[0]["label"] == squares.predict([str(image)])[0]["label"]


def test_an_lstm_exports_to_dynamic_int8_onnx_and_forecasts_like_the_original(forecaster, tmp_path):
    result = export(forecaster.path, "onnx", "int8", tmp_path / "int8", latency_samples=3)
    report = assert_full_table(result.path, "mae")
    assert report["quantize"] == "dynamic-int8" and "DynamicQuantizeLSTM" in ops(result.path)
    assert report["reference_precision"] == {"trained": "bf16", "compared": "fp32"}
    assert report["parity"]["agreement"] >= 0.98
    assert report["accuracy"]["exported"] == pytest.approx(report["accuracy"]["original"], rel=0.02)
    exported = modelyard.load(result.path)
    history = [60 + 8 * np.sin(2 * np.pi * i / 7) for i in range(30)]
    requests = [{"history": history}, {"history": history, "horizon": 20}]  # direct, then recursive
    for before, after in zip(forecaster.predict(requests), exported.predict(requests), strict=True):
        assert after["recursive"] == before["recursive"] and len(after["forecast"]) == before["horizon"]
        assert np.allclose(after["forecast"], before["forecast"], rtol=0.01)
    assert exported.evaluate()["mae"] == pytest.approx(forecaster.evaluate()["mae"], rel=0.02)


@pytest.fixture(scope="module")
def gpt_onnx(tiny_gpt_bundle, tmp_path_factory):
    return export(tiny_gpt_bundle, "onnx", None, tmp_path_factory.mktemp("x") / "onnx", latency_samples=3)


def test_the_small_gpt_exports_to_onnx_that_generates_exactly_like_the_original(tiny_gpt_bundle, gpt_onnx):
    original, exported = modelyard.load(tiny_gpt_bundle), modelyard.load(gpt_onnx.path)
    report = assert_full_table(gpt_onnx.path, "perplexity")
    assert report["parity"]["agreement"] == 1.0 and report["loss"]["exported"] == pytest.approx(
        report["loss"]["original"], abs=1e-4
    )
    assert exported.learner.module is None
    assert exported.evaluate()["loss"] == pytest.approx(original.evaluate()["loss"], abs=1e-4)
    greedy = {"temperature": 0, "max_new_tokens": 20}  # prompt + output within the 32-token window
    assert exported.learner.generate("ROMEO:", **greedy) == original.learner.generate("ROMEO:", **greedy)
    prompts = ["ROMEO:", "To be or not"]  # different lengths: the batch is left-padded
    both = exported.learner.generator.complete(prompts, temperature=0, max_new_tokens=8)
    alone = [exported.learner.generator.complete([p], temperature=0, max_new_tokens=8)[0] for p in prompts]
    assert both == alone
    (long,) = exported.learner.generator.complete(["ROMEO:"], temperature=0, max_new_tokens=60)
    assert long["finish_reason"] == "stop" or long["completion_tokens"] == 60  # past the 32-token window


def test_the_small_gpt_exports_to_int8_onnx_within_the_perplexity_tolerance(tiny_gpt_bundle, tmp_path):
    result = export(tiny_gpt_bundle, "onnx", "int8", tmp_path / "int8", latency_samples=3)
    report = assert_full_table(result.path, "perplexity")
    assert report["quantize"] == "dynamic-int8" and "MatMulInteger" in ops(result.path)
    assert report["size_mb"]["exported"] < report["size_mb"]["original"]
    assert report["accuracy"]["exported"] == pytest.approx(report["accuracy"]["original"], rel=0.02)


def test_an_exported_gpt_serves_completions(gpt_onnx):
    from serving_helpers import serving

    with serving(gpt_onnx.path) as client:
        body = client.post("/v1/completions", json={"prompt": "KING:", "max_tokens": 5, "temperature": 0}).json()
    (choice,) = body["choices"]
    assert choice["finish_reason"] in ("length", "stop") and body["usage"]["prompt_tokens"] > 0


def test_a_scratch_transformer_exports_to_int8_and_is_refused_for_onnx_with_the_way_out(banking_slice, tmp_path):
    """The default `distill` student: PyTorch's fused encoder-layer path once crashed on its int8 Linear layers."""
    from conftest import write_config

    from modelyard.errors import UserError

    config = write_config(banking_slice, "scratch-transformer")
    raw = yaml.safe_load(config.read_text())
    raw["model"].update(hidden_size=32, layers=1, heads=2, vocab_size=500)
    raw["train"].update(epochs=1, batch_size=32, early_stopping=None)
    config.write_text(yaml.safe_dump(raw))
    model = modelyard.train(config, output=tmp_path / "scratch", quiet=True, track=False)
    loose = Tolerance(min_agreement=0.9, max_accuracy_drop=0.1)  # one epoch on 320 rows: near-tied classes
    int8 = export(model.path, "torch", quantize="int8", output=tmp_path / "int8", tolerance=loose)
    assert int8.report["parity"]["agreement"] >= 0.9
    answers = modelyard.load(int8.path).predict(["my card has not arrived", "I want a refund"])
    assert all(a["label"] in model.labels for a in answers)
    with pytest.raises(UserError, match="no faithful ONNX export") as refused:
        export(model.path, "onnx", output=tmp_path / "onnx")
    assert "--format torch --quantize int8" in refused.value.hint
