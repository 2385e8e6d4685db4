"""`explain` on a model it cannot explain says so, whatever input it is given."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from modelyard.errors import UserError
from modelyard.evaluation.explain import explain
from modelyard.learners.detection import DetectorLearner
from modelyard.tasks.object_detection import DetectionModelConfig

IMAGE = Path(__file__).resolve().parents[2] / "examples" / "data" / "raccoon_mini" / "images" / "raccoon-106.jpg"


@pytest.mark.parametrize("item", [str(IMAGE), "a raccoon in the bin", ""])
def test_a_detector_is_not_explainable_whether_given_an_image_or_a_text(item):
    learner = DetectorLearner.create(["raccoon"], DetectionModelConfig(trunk="random", image_size=64))
    model = SimpleNamespace(learner=learner, manifest={"task": "object_detection"})
    with pytest.raises(UserError, match="explanations are not available for object_detection models"):
        explain(model, item)


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
