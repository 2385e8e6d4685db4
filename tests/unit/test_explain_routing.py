"""`explain` (and /v1/explain) on a model it cannot explain says so, whatever input it is given, and names the models
that can be explained."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.errors import UserError
from modelyard.evaluation.explain import explain
from modelyard.learners.detection import DetectorLearner
from modelyard.tasks.object_detection import DetectionModelConfig

IMAGE = Path(__file__).resolve().parents[2] / "examples" / "data" / "raccoon_mini" / "images" / "raccoon-106.jpg"


@pytest.mark.parametrize("item", [str(IMAGE), "a raccoon in the bin", ""])
def test_a_detector_is_not_explainable_whether_given_an_image_or_a_text(item):
    learner = DetectorLearner.create(["raccoon"], DetectionModelConfig(trunk="random", image_size=64))
    model = SimpleNamespace(learner=learner, manifest={"task": "object_detection"})
    with pytest.raises(UserError, match="explanations are not available for object_detection models") as refused:
        explain(model, item)
    assert "table models (--row)" in refused.value.hint and "entity models" in refused.value.hint


def _explain_client(model: SimpleNamespace) -> TestClient:
    """The explain route alone, serving `model`."""
    from modelyard.serving.dependencies import get_service
    from modelyard.serving.errors import install_error_handlers
    from modelyard.serving.routes.explain import router
    from modelyard.serving.settings import ServeSettings

    app = FastAPI()
    app.state.settings = ServeSettings()
    install_error_handlers(app)
    app.include_router(router)
    app.dependency_overrides[get_service] = lambda: SimpleNamespace(model=model)
    return TestClient(app)


def test_the_server_refuses_to_explain_a_detector_naming_the_models_it_explains_by_their_input():
    """It said "text classifiers do", though entity, image and table models explain too."""
    learner = DetectorLearner.create(["raccoon"], DetectionModelConfig(trunk="random", image_size=64))
    model = SimpleNamespace(learner=learner, manifest={"task": "object_detection"})
    reply = _explain_client(model).post("/v1/explain", json={"input": "a raccoon"})
    assert reply.status_code == 422
    message = reply.json()["error"]["message"]
    assert message.startswith("explanations are not available for object_detection models")
    assert "entity models (input: the text;" in message and "image classifiers (input: the image as base64)" in message
    assert "table models (input: {column: value})" in message and "--" not in message


def test_the_server_refuses_an_export_without_its_path_or_a_command_line():
    learner = SimpleNamespace(backbone="efficientnet-lite0")
    manifest = {"task": "image_classification", "runtime": "onnxruntime", "export": {"source": {"path": "/runs/b/1"}}}
    model = SimpleNamespace(learner=learner, manifest=manifest, path=Path("/runs/bees-onnx"))
    reply = _explain_client(model).post("/v1/explain", json={"input": "aGk="})
    assert reply.status_code == 422
    assert reply.json()["error"]["message"] == (
        "this model: an ONNX Runtime export cannot be explained (explanations need the gradients of the trained "
        "PyTorch model); serve the bundle it was exported from to explain its predictions"
    )


@pytest.mark.parametrize(
    ("export", "said"),
    [
        ({"runtime": "onnxruntime", "quantize": "static-int8"}, "an ONNX Runtime int8 export cannot be explained"),
        ({"runtime": "torch", "quantize": "dynamic-int8"}, "a PyTorch int8 export cannot be explained"),
    ],
)
def test_an_export_is_refused_as_an_export_naming_the_bundle_it_came_from(export, said):
    learner = SimpleNamespace(backbone="efficientnet-lite0")  # an ONNX learner: no gradients, nothing to route
    manifest = {"task": "image_classification", **export, "export": {"source": {"path": "/runs/bees/1"}}}
    model = SimpleNamespace(learner=learner, manifest=manifest, path=Path("/runs/bees-onnx"))
    with pytest.raises(UserError) as caught:
        explain(model, str(IMAGE))
    assert caught.value.message.startswith(f"/runs/bees-onnx: {said}")
    assert caught.value.hint == "explain the bundle it was exported from: modelyard explain /runs/bees/1 ..."


@pytest.fixture
def tiny_image_model():
    from modelyard.learners.image import ImageClassifierLearner
    from modelyard.tasks.image_classification import ImageModelConfig

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    learner = ImageClassifierLearner.create("cnn-scratch", ["a", "b"], 16, "none", ImageModelConfig())
    return SimpleNamespace(learner=learner, manifest={"task": "image_classification"})


def test_image_attributions_retry_with_more_steps_and_say_when_they_have_not_converged(tiny_image_model, monkeypatch):
    from modelyard.evaluation import explain as module

    monkeypatch.setattr(module, "CONVERGED", 0.0)  # never close enough: every allowed try is made
    monkeypatch.setattr(module, "IMAGE_MAX_STEPS", 4)
    result = module.explain_image(tiny_image_model, str(IMAGE), steps=1)
    assert result["steps"] == 4 and "(4 steps," in result["method"]
    assert result["converged"] is False
    gap = result["output"] - result["baseline_output"]
    assert result["relative_delta"] == pytest.approx(abs(result["attribution_sum"] - gap) / abs(gap), rel=1e-2)


def test_converged_image_attributions_sum_to_the_output_change(tiny_image_model):
    from modelyard.evaluation.explain import CONVERGED, explain_image

    result = explain_image(tiny_image_model, str(IMAGE))
    gap = result["output"] - result["baseline_output"]
    assert result["converged"] is (result["relative_delta"] <= CONVERGED)
    assert result["converged"] and result["attribution_sum"] == pytest.approx(gap, rel=CONVERGED)


def test_the_server_and_the_report_make_one_try_and_say_whether_it_converged(tiny_image_model, monkeypatch):
    from modelyard.evaluation import explain as module

    monkeypatch.setattr(module, "CONVERGED", 0.0)  # a retry would be wanted, but the quick budget allows none
    result = module.explain(tiny_image_model, str(IMAGE), seconds=module.QUICK_SECONDS)
    assert result["steps"] == module.IMAGE_STEPS and result["converged"] is False
