"""The linear probe folded into one linear layer answers exactly as the scikit-learn pipeline it came from."""

import numpy as np
import pytest
import torch

from modelyard.learners.linear_probe import fit_probe, linear_head


@pytest.mark.parametrize("classes", [2, 4])
def test_folded_head_gives_the_probe_probabilities(classes: int) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(classes), 30)
    x = rng.normal(size=(len(y), 16)) * rng.uniform(0.5, 20, size=16) + rng.normal(size=16) * 5 + y[:, None]
    probe = fit_probe(x, y)
    weight, bias = linear_head(probe)
    probabilities = torch.softmax(torch.from_numpy(x).float() @ weight.T + bias, dim=-1).numpy()
    assert weight.shape == (classes, 16)
    np.testing.assert_allclose(probabilities, probe.predict_proba(x), atol=1e-4)


def test_a_class_with_one_example_still_gives_a_head() -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 10 + [1] * 10 + [2])
    weight, bias = linear_head(fit_probe(rng.normal(size=(len(y), 8)) + y[:, None], y))
    assert weight.shape == (3, 8) and bias.shape == (3,)
