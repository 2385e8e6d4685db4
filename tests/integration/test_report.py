"""The HTML report, the model card and linear explanations on a real TF-IDF bundle."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from modelyard import api
from modelyard.cli import app
from modelyard.evaluation.explain import explain_text
from modelyard.evaluation.report import write_report
from modelyard.metrics import cost

SECTIONS = [
    "headline",
    "per-class",
    "confusion",
    "curves",
    "calibration",
    "mistakes",
    "explanations",
    "learning",
    "data",
    "cost",
    "model-card",
]


@pytest.fixture(scope="module")
def report_html(tfidf_bundle, tmp_path_factory) -> str:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cost, "TIME_BUDGET_S", 0.5)
        path = write_report(tfidf_bundle, tmp_path_factory.mktemp("report") / "report.html")
    return path.read_text(encoding="utf-8")


def test_the_report_has_every_section(report_html):
    found = re.findall(r'<section id="([\w-]+)"', report_html)
    assert found == SECTIONS


def test_the_report_shows_test_metrics_with_intervals_beside_the_baseline(report_html):
    assert re.search(r"<td>test</td><td>[\d.]+ \[[\d.]+, [\d.]+\]</td>", report_html)
    assert "baseline: tfidf_logreg" in report_html
    assert "Expected calibration error" in report_html
    assert "cost per 1,000 predictions at $0.05/CPU-hour" in report_html


def test_the_report_is_one_self_contained_file(report_html):
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", report_html)
    assert "<script" not in report_html and "<link" not in report_html
    assert report_html.count('src="data:image/png;base64,') >= 5
    assert "@media print" in report_html


def test_the_model_card_is_written_into_the_bundle_and_checksummed(tfidf_bundle):
    card = (tfidf_bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    manifest = json.loads((tfidf_bundle / "modelyard.json").read_text(encoding="utf-8"))
    assert "MODEL_CARD.md" in manifest["files"]
    for heading in ("## Intended use", "## Data", "## Metrics", "## Known limits", "## How to reproduce"):
        assert heading in card
    assert manifest["data"]["test"]["sha256"][:16] in card
    assert re.search(r"\| accuracy \| [\d.]+ \| [\d.]+ \[[\d.]+, [\d.]+\] \|", card)


def test_linear_attributions_sum_exactly_to_the_logit_above_the_intercept(tfidf_bundle):
    model = api.load(tfidf_bundle)
    result = explain_text(model, "I am still waiting for my refund to show up")
    assert len(result["tokens"]) == len(result["attributions"]) > 3
    assert sum(result["attributions"]) == pytest.approx(result["output"] - result["baseline_output"], abs=1e-4)
    [predicted] = model.predict(["I am still waiting for my refund to show up"])  # explained: the predicted label
    assert result["label"] == predicted["label"] and result["score"] == pytest.approx(predicted["score"])


def test_explain_cli_prints_json_attributions_and_exits_zero(tfidf_bundle):
    result = CliRunner().invoke(app, ["explain", str(tfidf_bundle), "--text", "my card is not working", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) >= {"tokens", "attributions", "label", "score"}


def test_explain_cli_colours_tokens_in_the_terminal(tfidf_bundle):
    result = CliRunner().invoke(app, ["explain", str(tfidf_bundle), "--text", "where is my refund"])
    assert result.exit_code == 0, result.output
    assert "refund" in result.stdout and "sum of attributions" in result.stdout


def test_explain_route_returns_tokens_and_attributions(tfidf_bundle):
    from serving_helpers import serving

    with serving(tfidf_bundle) as client:
        ok = client.post("/v1/explain", json={"input": "where is my refund"})
        unknown = client.post("/v1/explain", json={"input": "where is my refund", "label": "nope"})
    assert ok.status_code == 200, ok.text
    assert set(ok.json()) >= {"tokens", "attributions", "label", "score"}
    assert ok.json()["truncated"] is False  # TF-IDF reads the whole text, however long
    assert unknown.status_code == 422 and unknown.json()["error"]["type"] == "invalid_input"


def test_a_reloaded_bundle_scores_what_it_scored_at_train_time(tfidf_bundle):
    recorded = json.loads((tfidf_bundle / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert api.load(tfidf_bundle).evaluate()["accuracy"] == pytest.approx(recorded["accuracy"])
