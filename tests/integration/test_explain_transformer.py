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


def test_a_text_past_max_length_is_explained_from_its_first_tokens_and_says_so(minilm_bundle):
    from serving_helpers import serving
    from typer.testing import CliRunner

    from modelyard.cli import app

    model = api.load(minilm_bundle)
    text = "I am still waiting for my refund to show up on my statement. " * 40
    result = explain_text(model, text)
    assert result["truncated"] is True and result["max_length"] == model.learner.spec["max_length"]
    assert result["text_tokens"] > len(result["tokens"]) == len(result["attributions"])
    assert explain_text(model, "where is my refund")["truncated"] is False
    cli = CliRunner().invoke(app, ["explain", str(minilm_bundle), "--text", text])
    assert cli.exit_code == 0, cli.output
    assert f"the text is {result['text_tokens']} tokens long; the model reads its first" in " ".join(cli.stderr.split())
    with serving(minilm_bundle) as client:
        answer = client.post("/v1/explain", json={"input": text})
    assert answer.status_code == 200, answer.text
    assert answer.json()["truncated"] is True and answer.json()["text_tokens"] == result["text_tokens"]
