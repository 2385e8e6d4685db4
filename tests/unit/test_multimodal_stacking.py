"""The fusion's stacking weights: fitted on out-of-fold logits with an L2 penalty, so a modality that got every
training row right (a few dozen rows) does not make every fused answer score 1."""

from __future__ import annotations

import numpy as np

from modelyard.learners.multimodal import _stacking_weights


def test_stacking_weights_stay_moderate_when_the_out_of_fold_logits_separate_the_rows():
    y = np.array([0, 1] * 5)
    margin = np.where(y == 1, 1.0, -1.0)[:, None] * np.array([[-1.0, 1.0]])  # (10, 2): each row right by 2 logits
    a, b = _stacking_weights([0.5 * margin, 1.5 * margin], y)
    assert 0 <= a < 3 and 0 <= b < 3
    unsure = a * np.array([0.25, -0.25]) + b * np.array([-0.7, 0.7])  # image 0.62 one way, text 0.80 the other
    assert np.exp(unsure).max() / np.exp(unsure).sum() < 0.95


def test_without_logits_the_heads_are_summed():
    assert _stacking_weights([None, np.zeros((2, 2))], np.array([0, 1])) == (1.0, 1.0)
