"""The official `openai` Python client (a dev dependency) against a real server process."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest


@pytest.fixture(scope="module")
def base_url(tiny_gpt_bundle):
    import uvicorn

    from modelyard.serving.app import create_app
    from modelyard.serving.settings import ServeSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(str(tiny_gpt_bundle), ServeSettings()), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


def test_the_openai_client_gets_completions_and_chat_answers(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    completion = client.completions.create(model="tiny-gpt", prompt="ROMEO:", max_tokens=5, temperature=0)
    assert completion.choices[0].finish_reason in ("length", "stop") and completion.usage.prompt_tokens == 6
    chat = client.chat.completions.create(
        model="tiny-gpt", messages=[{"role": "user", "content": "Speak"}], max_tokens=4, seed=1
    )
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens <= 4


def test_the_openai_client_streams_chat_deltas(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    stream = client.chat.completions.create(
        model="tiny-gpt",
        messages=[{"role": "user", "content": "Speak"}],
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens >= 1 and isinstance(text, str)
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def test_the_openai_client_lists_and_retrieves_the_served_model(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    (listed,) = client.models.list().data
    assert client.models.retrieve(listed.id).id == listed.id and listed.created > 0
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("some-other-model")
