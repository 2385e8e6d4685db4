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
