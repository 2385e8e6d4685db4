"""The playground page in headless Chromium for a speech model: upload a recording or record from the (fake)
microphone, and see the transcript."""

from __future__ import annotations

import pytest
from browser_helpers import CHROMIUM_ARGS, chromium
from playwright import sync_api
from serving_live import live_server
from speech_helpers import digit_strings, speech_config

import modelyard
from modelyard.metrics.speech import speech_metrics

pytestmark = pytest.mark.slow
FAKE_MICROPHONE = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def whisper_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper-page")
    strings = digit_strings(folder)
    config = speech_config(folder, strings, backbone="whisper-tiny.en", language="en")
    return modelyard.train(config, folder / "bundle", ["data.max_rows=2"], quiet=True).path, strings


@pytest.fixture
def page():
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS + FAKE_MICROPHONE
        )
        try:
            context = browser.new_context(permissions=["microphone"])
            yield context.new_page()
        finally:
            browser.close()


def test_an_uploaded_recording_shows_its_transcript(whisper_bundle, page):
    bundle, strings = whisper_bundle
    reference = strings["test"].read_text().splitlines()[1].split(",")[1]
    with live_server(bundle) as url:
        page.goto(url + "/")
        page.get_by_test_id("model-name").filter(has_text="test-whisper-tiny-en").wait_for()
        page.get_by_test_id("image-input").set_input_files(str(strings["test"].parent / "00000_theo.wav"))
        page.get_by_test_id("predict-image").click()
        page.get_by_test_id("latency").filter(has_text="ms").wait_for()
        transcript = page.get_by_test_id("top-label").inner_text()
        assert page.get_by_test_id("error").inner_text() == ""
    assert speech_metrics([reference], [transcript])["wer"] <= 0.5


def test_a_microphone_recording_is_sent_as_wav_and_transcribed(whisper_bundle, page):
    bundle, _ = whisper_bundle
    with live_server(bundle) as url:
        page.goto(url + "/")
        page.get_by_test_id("model-name").filter(has_text="test-whisper-tiny-en").wait_for()
        page.get_by_test_id("record").click()
        page.wait_for_timeout(1500)
        page.get_by_test_id("record").click()
        page.get_by_test_id("audio-preview").wait_for()
        page.get_by_test_id("predict-image").click()
        page.get_by_test_id("latency").filter(has_text="ms").wait_for()
        assert page.get_by_test_id("error").inner_text() == ""
        assert page.get_by_test_id("top-label").inner_text()  # the transcript, or "(no speech)" for the fake tone
