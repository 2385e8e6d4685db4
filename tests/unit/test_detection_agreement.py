"""The export parity check's detection agreement: a box scoring just under min_score in one model and just over it
in the other (int8 rounding at the threshold) agrees; a moved, relabelled, missing or extra box does not."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from modelyard.learners.detection import SCORE_MARGIN, DetectorLearner

RACCOON = [40.0, 30.0, 140.0, 120.0]
DOG = [200.0, 150.0, 260.0, 230.0]


def _learner(min_score: float = 0.3) -> DetectorLearner:
    spec = {"backbone": "efficientnet-lite0-centernet", "image_size": 64}
    return DetectorLearner(None, ["raccoon", "dog"], spec, SimpleNamespace(min_score=min_score, nms_iou=0.5))


def _image(*boxes: tuple[list[float], float, int]) -> np.ndarray:
    """One image's padded (1, 100, 6) detections, as `export_outputs` gives them."""
    out = np.full((1, 100, 6), -1.0)
    for k, (box, score, cls) in enumerate(boxes):
        out[0, k] = [*box, score, cls]
    return out


def _moved(box: list[float], dx: float) -> list[float]:
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


def test_a_score_crossing_min_score_by_less_than_the_margin_agrees_and_strictly_does_not():
    learner = _learner()
    ref = _image((RACCOON, 0.9, 0), (DOG, 0.31, 1), (_moved(DOG, 5), 0.05, 1))
    new = _image((_moved(RACCOON, 3), 0.88, 0), (DOG, 0.3 - SCORE_MARGIN + 0.01, 1))
    assert learner.agreement(ref, new) == 1.0
    assert learner.agreement(new, ref) == 1.0
    assert learner.agreement(ref, new, margin=0.0) == 0.0


@pytest.mark.parametrize(
    "new",
    [
        _image((_moved(RACCOON, 60), 0.9, 0)),  # the box moved (IoU < 0.5)
        _image((RACCOON, 0.9, 1)),  # relabelled
        _image((RACCOON, 0.3 - SCORE_MARGIN - 0.01, 0)),  # fell further than the margin
        _image(),  # gone
        _image((RACCOON, 0.9, 0), (DOG, 0.5, 1)),  # an extra confident box
        _image((RACCOON, 0.9, 0), (_moved(RACCOON, 4), 0.8, 0)),  # split in two
    ],
    ids=["moved", "relabelled", "below-margin", "missing", "extra", "duplicated"],
)
def test_worse_detections_disagree_whichever_model_is_the_reference(new):
    learner = _learner()
    ref = _image((RACCOON, 0.9, 0))
    assert learner.agreement(ref, new) == 0.0
    assert learner.agreement(new, ref) == 0.0


def test_agreement_is_the_share_of_images():
    learner = _learner()
    same, moved = _image((RACCOON, 0.9, 0)), _image((_moved(RACCOON, 60), 0.9, 0))
    assert learner.agreement(np.concatenate([same] * 4), np.concatenate([same, same, same, moved])) == 0.75
    assert learner.agreement(np.concatenate([_image()] * 2), np.concatenate([_image()] * 2)) == 1.0
