"""The playground with an entity extractor in headless Chromium: type a text, see each predicted entity marked
in it with its type, the marks covering exactly the characters the server's spans name (code points: an emoji
before an entity is one character to the server and two UTF-16 units to the page)."""

from __future__ import annotations

import pytest
from browser_helpers import CHROMIUM_ARGS, chromium
from playwright import sync_api
from serving_live import live_server

pytestmark = pytest.mark.slow


def test_typed_text_comes_back_with_its_entities_highlighted(entity_bundle):
    text = "Carol 🙂 flew to Oslo today ."
    expected = entity_bundle.predict([text])[0]["entities"]
    assert ("Oslo", "LOC") in [(s["text"], s["label"]) for s in expected]  # a span after the emoji
    with live_server(entity_bundle.path) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium()), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.get_by_test_id("model-name").filter(has_text=entity_bundle.name).wait_for()
            page.get_by_test_id("text-input").fill(text)
            page.get_by_test_id("predict").click()
            marks = page.get_by_test_id("entity")
            marks.first.wait_for()
            shown = [
                (m.evaluate("e => e.firstChild.textContent"), m.locator("small").inner_text()) for m in marks.all()
            ]
            assert shown == [(s["text"], s["label"]) for s in expected]
            assert page.get_by_test_id("entities").inner_text().replace("PER", "").replace("LOC", "") == text
            assert page.get_by_test_id("top-label").inner_text() == f"{len(expected)} entities"
            assert marks.first.get_attribute("title").startswith("PER · ")
            assert page.get_by_test_id("error").inner_text() == ""
        finally:
            browser.close()
