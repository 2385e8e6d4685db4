"""The playground with a detector in headless Chromium: upload a photo, see it redrawn with the boxes."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import CHROMIUM_ARGS, chromium
from playwright import sync_api
from serving_live import live_server

import modelyard

pytestmark = pytest.mark.slow
MINI = Path(__file__).resolve().parents[2] / "examples" / "data" / "raccoon_mini"


@pytest.fixture
def detector_server(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"name: raccoon-browser\ntask: object_detection\ndata:\n  annotations: {MINI}\n  train: {MINI / 'train.txt'}\n"
        f"  test: {MINI / 'test.txt'}\nmodel: {{image_size: 64, min_score: 0.0}}\ntrain: {{epochs: 1, batch_size: 8}}\n"
    )
    bundle = modelyard.train(config, tmp_path / "bundle", quiet=True, track=False).path
    with live_server(bundle) as url:
        yield url


def test_an_uploaded_photo_is_redrawn_with_red_boxes(detector_server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium()), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(detector_server + "/")
            page.get_by_test_id("model-name").filter(has_text="raccoon-browser").wait_for()
            page.get_by_test_id("image-input").set_input_files(str(MINI / "images" / "raccoon-106.jpg"))
            page.get_by_test_id("predict-image").click()
            canvas = page.get_by_test_id("boxes")
            canvas.wait_for(state="visible")
            reds = canvas.evaluate(
                """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] === 220 && d[i + 1] === 38 && d[i + 2] === 38) n++;
                return n; }"""
            )
            assert reds > 20, "box outlines in #dc2626"
            assert page.get_by_test_id("bar-row").count() >= 1
            assert page.get_by_test_id("error").inner_text() == ""
        finally:
            browser.close()
