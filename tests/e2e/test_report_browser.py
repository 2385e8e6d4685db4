"""The HTML report in headless Chromium: every section renders, every picture loads, nothing is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import CHROMIUM_ARGS, chromium
from playwright.sync_api import sync_playwright

from modelyard.evaluation.report import write_report
from modelyard.metrics import cost

pytestmark = pytest.mark.slow
SECTIONS = [
    "Headline metrics",
    "Per-class results",
    "Confusion matrix",
    "Precision-recall and ROC curves",
    "Calibration",
    "Most confident mistakes",
    "Explained examples",
    "Learning curves",
    "Data",
    "Cost",
    "Model card",
]


@pytest.fixture(scope="module")
def report_file(tfidf_bundle, tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cost, "TIME_BUDGET_S", 0.5)
        return write_report(tfidf_bundle, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture
def browser():
    executable = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def report_page(browser, report_file):
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report_file.as_uri())
    return page, requests, report_file.parent


def test_every_section_of_the_report_renders_in_chromium(report_page):
    page, requests, tmp_path = report_page
    headings = page.locator("section > h2").all_inner_texts()
    assert headings == SECTIONS
    for title in SECTIONS:
        assert page.locator("section > h2", has_text=title).first.is_visible()
    broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
    assert page.evaluate("document.images.length") >= 5 and broken == 0
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)


def test_the_printed_report_hides_the_navigation(report_page):
    page, _, _ = report_page
    page.emulate_media(media="print")
    assert not page.locator("nav").is_visible()
    assert page.locator("#model-card").is_visible()


def test_a_generation_report_shows_perplexity_and_sample_generations(browser, tiny_gpt_bundle, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cost, "TIME_BUDGET_S", 0.2)
        path = write_report(tiny_gpt_bundle, tmp_path / "report.html")
    page = browser.new_page()
    page.goto(path.as_uri())
    headings = page.locator("section > h2").all_inner_texts()
    assert headings == ["Headline metrics", "Generation", "Learning curves", "Data", "Cost", "Model card"]
    generation = page.locator("#generation")
    assert "perplexity" in generation.inner_text() and generation.locator("tbody tr").count() >= 3
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
