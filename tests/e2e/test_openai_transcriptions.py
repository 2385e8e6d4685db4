"""The official `openai` client's `audio.transcriptions.create` against a real server serving a zero-shot Whisper
bundle, on a real voice (a digit string from the committed FSDD slice)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest
from speech_helpers import digit_strings, speech_config

import modelyard
from modelyard.metrics.speech import speech_metrics


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import uvicorn

    from modelyard.serving.app import create_app
    from modelyard.serving.settings import ServeSettings

    folder = tmp_path_factory.mktemp("whisper-served")
    strings = digit_strings(folder)
    config = speech_config(folder, strings, backbone="whisper-tiny.en", language="en")
    bundle = modelyard.train(config, folder / "bundle", ["data.max_rows=2"], quiet=True).path
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(str(bundle), ServeSettings()), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/v1", strings
    server.should_exit = True
    thread.join(10)


def test_the_openai_client_transcribes_an_uploaded_recording(served):
    base_url, strings = served
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    wav = strings["test"].parent / "00000_theo.wav"
    reference = strings["test"].read_text().splitlines()[1].split(",")[1]
    with wav.open("rb") as handle:
        result = client.audio.transcriptions.create(model="whisper-tiny.en", file=handle)
    assert speech_metrics([reference], [result.text])["wer"] <= 0.5
    with wav.open("rb") as handle:
        verbose = client.audio.transcriptions.create(
            model="whisper-tiny.en", file=handle, response_format="verbose_json", language="en"
        )
    assert verbose.duration > 1 and verbose.text == result.text and verbose.segments[0].end > 0


def test_the_openai_client_gets_a_clear_error_for_a_file_that_is_not_audio(served):
    base_url, _ = served
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="not a readable audio file"):
        client.audio.transcriptions.create(model="whisper-tiny.en", file=("notes.wav", b"plain text, not audio" * 20))
