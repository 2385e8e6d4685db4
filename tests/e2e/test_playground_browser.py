"""The playground page in headless Chromium: type a text, see labelled probability bars and the latency."""

from __future__ import annotations

import pytest
from browser_helpers import CHROMIUM_ARGS, chromium
from playwright import sync_api
from serving_live import live_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tfidf_bundle):
    with live_server(tfidf_bundle) as url:
        yield url


@pytest.fixture
def page():
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_typing_a_text_shows_probability_bars_for_the_predicted_labels(server, page):
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server) else external.append(r.url))
    page.goto(server + "/")
    page.get_by_test_id("model-name").filter(has_text="test-tfidf-linear").wait_for()

    page.get_by_test_id("text-input").fill("I want to activate my new card")
    page.get_by_test_id("predict").click()

    rows = page.get_by_test_id("bar-row")
    rows.first.wait_for()
    assert rows.count() == 5  # top 5 of the 8 labels
    top = page.get_by_test_id("top-label").inner_text()
    assert top and top == rows.first.locator(".bar-label").inner_text()
    percent = float(rows.first.locator(".bar-value").inner_text().rstrip("%"))
    assert 0 < percent <= 100
    assert "ms" in page.get_by_test_id("latency").inner_text()
    assert page.get_by_test_id("error").inner_text() == ""
    assert external == []  # nothing loaded from outside: the page works offline


def test_explain_colours_the_tokens_of_the_predicted_text(server, page):
    page.goto(server + "/")
    page.get_by_test_id("model-name").filter(has_text="test-tfidf-linear").wait_for()
    page.get_by_test_id("text-input").fill("I am still waiting for my refund to show up")
    page.get_by_test_id("predict").click()
    page.get_by_test_id("bar-row").first.wait_for()

    page.get_by_test_id("explain").click()

    tokens = page.get_by_test_id("token")
    tokens.first.wait_for()
    words = tokens.all_inner_texts()
    assert "refund" in words and len(words) >= 8
    coloured = [t for t in tokens.all() if t.evaluate("el => el.style.background") != ""]
    assert coloured, "no token was coloured by its attribution"
    assert all(t.get_attribute("title") for t in coloured)
    top = page.get_by_test_id("top-label").inner_text()
    assert f"“{top}”" in page.get_by_test_id("explanation").inner_text()
    assert page.get_by_test_id("error").inner_text() == ""


@pytest.fixture
def image_server(tmp_path):
    from image_helpers import colour_squares, train_squares

    colour_squares(tmp_path / "data", per_class=6)
    bundle = train_squares(tmp_path).path
    with live_server(bundle) as url:
        yield url


def test_explain_lays_a_heat_map_over_an_uploaded_image(image_server, page, tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 48), (230, 30, 40)).save(tmp_path / "red.png")
    page.goto(image_server + "/")
    page.get_by_test_id("model-name").filter(has_text="squares").wait_for()
    page.get_by_test_id("image-input").set_input_files(str(tmp_path / "red.png"))
    page.get_by_test_id("predict-image").click()
    page.get_by_test_id("bar-row").first.wait_for()

    page.get_by_test_id("explain").click()

    heatmap = page.get_by_test_id("heatmap")
    heatmap.wait_for()
    assert heatmap.evaluate("img => img.complete && img.naturalWidth") >= 192
    assert "heat-map" in heatmap.get_attribute("alt")
    assert page.get_by_test_id("error").inner_text() == ""
