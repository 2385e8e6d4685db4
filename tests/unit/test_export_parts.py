"""The pieces of export that need no trained bundle: int8 weight files, static ONNX quantization, soft labels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.data.splits import changed_splits
from modelyard.errors import UserError
from modelyard.export.distill import DistillationLearner, soften
from modelyard.export.onnx import quantize_onnx, to_onnx
from modelyard.export.parity import COMPARE, Tolerance, checked_split, problems
from modelyard.runtimes.onnx_session import onnx_session
from modelyard.runtimes.protocol import OnnxGraph
from modelyard.runtimes.torch_int8 import has_int8_layers, load_weights, quantize_module, save_quantized

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def small_net() -> nn.Module:
    return nn.Sequential(nn.Embedding(20, 16), nn.Linear(16, 32), nn.ReLU(), nn.LayerNorm(32), nn.Linear(32, 4))


def test_int8_weights_round_trip_through_safetensors_exactly(tmp_path):
    torch.manual_seed(0)
    quantized = quantize_module(small_net().eval())
    save_quantized(quantized, tmp_path / "model.safetensors")
    loaded = load_weights(small_net(), tmp_path / "model.safetensors")
    x = torch.tensor([[1, 5, 7, 19]])
    assert has_int8_layers(loaded)
    assert torch.equal(loaded(x), quantized(x))


def test_int8_weights_are_stored_as_int8_tensors(tmp_path):
    from safetensors.torch import load_file

    save_quantized(quantize_module(small_net().eval()), tmp_path / "model.safetensors")
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert tensors["1.weight_int8"].dtype == torch.int8 and tensors["1.weight_scale"].shape == (32,)
    assert tensors["0.weight"].dtype == torch.float32  # embeddings stay fp32


def test_static_int8_onnx_of_a_small_cnn_stays_close_to_fp32_and_keeps_named_nodes_fp32(tmp_path):
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)
    ).eval()
    images = torch.rand(16, 3, 16, 16)
    graph = OnnxGraph(
        cnn, (images[:2],), ["pixels"], ["logits"], {"pixels": {0: "batch"}, "logits": {0: "batch"}}, "static", ("/4/",)
    )
    to_onnx(graph, tmp_path / "fp32.onnx")
    feeds = [{"pixels": images[i : i + 4].numpy()} for i in range(0, 16, 4)]
    quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", "static", feeds, graph.fp32_nodes)
    out = onnx_session(tmp_path / "int8.onnx").run(None, {"pixels": images.numpy()})[0]
    with torch.no_grad():
        expected = cnn(images).numpy()
    assert out.shape == (16, 5) and np.abs(out - expected).max() < 0.05
    nodes = onnx.load(str(tmp_path / "int8.onnx")).graph.node
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= {n.op_type for n in nodes}  # calibrated QDQ
    dequantized = {out for n in nodes if n.op_type == "DequantizeLinear" for out in n.output}
    weights = {n.op_type: n.input[1] for n in nodes if n.op_type in ("Conv", "Gemm")}
    assert weights["Conv"] in dequantized and weights["Gemm"] not in dequantized  # "/4/Gemm" left in fp32


def test_softened_probabilities_keep_the_ranking_and_flatten_with_temperature():
    probs = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
    assert np.allclose(soften(probs, 1.0), probs, atol=1e-6)
    warm = soften(probs, 4.0)
    assert np.allclose(warm.sum(), 1.0) and list(warm[0].argsort()) == [2, 1, 0] and warm[0, 0] < 0.7


class _Logits:
    """A stand-in student whose logits are fixed per row: enough for the distillation loss alone."""

    module = nn.Identity()
    backbone = "stub"

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["logits"]


def test_a_down_weighted_rows_true_label_counts_for_its_weight_in_the_students_loss():
    teacher = soften(np.array([[0.9, 0.1], [0.2, 0.8]]), 1.0)
    learner = DistillationLearner(_Logits(), teacher, temperature=1.0, alpha=0.0)  # the hard labels alone
    batch = {
        "logits": torch.tensor([[2.0, -1.0], [0.5, 0.0]]),
        "labels": torch.tensor([0, 0]),
        "teacher": torch.from_numpy(teacher),
    }
    second_dropped = learner.loss({**batch, "weight": torch.tensor([1.0, 0.0])})
    assert second_dropped == pytest.approx(
        float(nn.functional.cross_entropy(batch["logits"][:1], batch["labels"][:1])) / 2
    )
    assert learner.loss({**batch, "weight": torch.ones(2)}) == pytest.approx(float(learner.loss(batch)))


def test_a_parity_problem_names_the_numbers():
    report = {"parity": {"agreement": 0.95, "samples": 200}, "accuracy": {"original": 0.9, "exported": 0.87}}
    found = problems(report, Tolerance())
    assert len(found) == 2 and "95.00% < 98.00%" in found[0] and "3.00 points (90.00% -> 87.00%)" in found[1]
    assert problems(report, Tolerance(min_agreement=0.9, max_accuracy_drop=0.05)) == []


def test_the_parity_check_answers_the_test_split_when_the_model_fitted_its_validation_rows():
    class Bagged:
        fits_validation_rows = True

    splits = {"validation": [1, 2], "test": [3]}
    assert checked_split(splits, object()) == ("validation", [1, 2])
    assert checked_split(splits, Bagged()) == ("test", [3])  # its validation scores would be in-sample
    assert checked_split({"validation": [], "test": [3]}, object()) == ("test", [3])
    assert checked_split({"validation": [1, 2], "test": []}, Bagged()) == ("validation", [1, 2])  # no other


def test_a_parity_problem_names_the_split_it_was_measured_on():
    report = {"parity": {"agreement": 0.5, "compared": "class probabilities", "samples": 80, "split": "test"},
              "accuracy": {"original": 0.9, "exported": 0.9}}  # fmt: skip
    assert "80 test inputs" in problems(report, Tolerance())[0]


def test_a_change_exactly_at_the_limit_is_allowed_despite_float_rounding():
    at_limit = {"parity": {"agreement": 0.98, "samples": 100}, "accuracy": {"original": 0.31, "exported": 0.30}}
    assert 0.31 - 0.30 > 0.01  # what the comparison must not trip on
    assert problems(at_limit, Tolerance()) == []
    wer = {
        "parity": {"agreement": 1.0, "samples": 100},
        "accuracy": {"metric": "wer", "original": 0.02, "exported": 0.025},
    }
    assert problems(wer, Tolerance()) == []
    mae = {
        "parity": {"agreement": 1.0, "samples": 100},
        "accuracy": {"metric": "mae", "original": 0.3, "exported": 0.306},
    }
    assert problems(mae, Tolerance()) == []
    over = {"parity": {"agreement": 0.97, "samples": 100}, "accuracy": {"original": 0.31, "exported": 0.29}}
    assert len(problems(over, Tolerance())) == 2  # one sample more is still refused


def test_forecast_agreement_counts_values_within_one_percent_of_the_window_level():
    original = np.array([[100.0, 110.0], [0.5, -0.5]])
    exported = np.array([[100.5, 112.0], [0.501, -0.5]])  # 112 is 1.9% of the first window's level away
    table = COMPARE["forecasts"](original, exported, np.array([[101.0, 111.0], [0.0, 0.0]]), ("original", "exported"))
    assert table["parity"]["agreement"] == 0.75 and table["parity"]["max_abs_diff"] == pytest.approx(2.0)
    assert table["accuracy"] == {"original": 0.75, "exported": pytest.approx(0.62525), "metric": "mae"}


def test_next_token_parity_reports_perplexity_and_argmax_agreement():
    original = np.array([[[0.7, 0.3], [0.4, 0.6]]])  # one window of two positions, vocabulary of two
    exported = np.array([[[0.6, 0.4], [0.6, 0.4]]])
    table = COMPARE["next_token"](original, exported, np.array([[0, 1]]), ("original", "exported"))
    assert table["parity"]["agreement"] == 0.5 and table["parity"]["positions"] == 2
    assert table["accuracy"]["original"] == pytest.approx(1 / np.sqrt(0.7 * 0.6), abs=1e-4)
    assert table["accuracy"]["metric"] == "perplexity" and table["loss"]["exported"] > table["loss"]["original"]


def test_an_error_metric_may_rise_only_by_the_relative_tolerance():
    report = {
        "parity": {"agreement": 1.0, "samples": 10},
        "accuracy": {"original": 2.0, "exported": 2.1, "metric": "mae"},
    }
    assert problems(report, Tolerance()) == ["mae rose 5.00% (2 -> 2.1), more than the 2.00% allowed"]
    assert problems(report, Tolerance(max_error_increase=0.06)) == []


@pytest.mark.parametrize("option", ["--min-agreement=99", "--min-agreement=1.01", "--max-accuracy-drop=101"])
def test_a_tolerance_out_of_range_is_refused_before_anything_is_exported(option):
    result = CliRunner().invoke(app, ["export", "no-such-bundle", "--format", "onnx", option])
    assert result.exit_code == 2 and "Invalid value for '" + option.split("=")[0] in result.output


def test_the_min_agreement_help_says_it_is_a_fraction():
    result = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert "a fraction (0.98 = 98%)" in result.output


@pytest.mark.parametrize("field", ["min_agreement", "max_accuracy_drop", "max_error_increase", "max_wer_increase"])
def test_a_tolerance_outside_zero_to_one_is_refused_in_python_too(field):
    with pytest.raises(UserError, match=f"{field} 99"):
        Tolerance(**{field: 99})


def test_changed_splits_names_each_split_whose_fingerprint_moved_and_ignores_unrecorded_ones():
    recorded = {"train": {"sha256": "a", "rows": 2}, "validation": {"sha256": "b"}, "test": {"sha256": "c"}}
    now = {"train": {"sha256": "a"}, "validation": {"sha256": "x"}, "extra": {"sha256": "y"}}
    assert changed_splits(recorded, now) == ["validation", "test"]
    assert changed_splits({"test": {"rows": 0}}, {}) == []


def test_the_no_export_hint_mentions_other_backbones_only_where_the_task_has_some():
    from types import SimpleNamespace

    from modelyard.export.exporter import _other_backbones
    from modelyard.tasks import get_task
    from modelyard.tasks.recommendation import RecModelConfig
    from modelyard.tasks.text_classification import TextModelConfig

    def model(task: str, config: object) -> SimpleNamespace:
        return SimpleNamespace(task=get_task(task), config=SimpleNamespace(task=task, model=config))

    assert _other_backbones(model("recommendation", RecModelConfig())) == ""
    text = model("text_classification", TextModelConfig(backbone="tfidf-linear"))
    assert _other_backbones(text) == " (other text_classification backbones may)"
    for task in ("multimodal_classification", "assistant"):  # no backbone of theirs exports
        assert _other_backbones(model(task, get_task(task).ModelConfig())) == ""


def test_the_trained_precision_comes_from_metrics_json_also_for_learners_without_a_precision(tmp_path):
    import json
    from types import SimpleNamespace

    from modelyard.export.exporter import _reference_in_fp32

    (tmp_path / "metrics.json").write_text(json.dumps({"train": {"precision": "bf16"}}))
    plain = SimpleNamespace()  # a forecaster, recommender or table learner keeps no `precision`
    assert _reference_in_fp32(SimpleNamespace(path=tmp_path, learner=plain)) == "bf16"
    autocasting = SimpleNamespace(precision="bf16")
    assert _reference_in_fp32(SimpleNamespace(path=tmp_path, learner=autocasting)) == "bf16"
    assert autocasting.precision == "fp32"  # the reference the export is compared with computes in fp32
