"""Integrated gradients on a fine-tuned MiniLM bundle: completeness and the shape of the answer."""

from __future__ import annotations

import pytest

from modelyard import api
from modelyard.evaluation.explain import explain_text

pytestmark = pytest.mark.slow


def test_integrated_gradients_are_complete_for_a_transformer(minilm_bundle):
    model = api.load(minilm_bundle)
    text = "I am still waiting for my refund to show up on my statement"
    result = explain_text(model, text)
    gap = result["output"] - result["baseline_output"]
    assert sum(result["attributions"]) == pytest.approx(gap, abs=0.02 * max(1.0, abs(gap)))
    assert "[CLS]" not in result["tokens"] and len(result["tokens"]) == len(result["attributions"])
    [predicted] = model.predict([text])  # by default the explanation is of the predicted label, at its probability
    assert result["label"] == predicted["label"] and result["score"] == pytest.approx(predicted["score"], abs=0.01)
