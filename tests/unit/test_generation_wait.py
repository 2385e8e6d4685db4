"""A non-streaming generation request stops its decoding when its client leaves or the server's timeout passes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from modelyard.serving import openai_routes
from modelyard.serving.errors import ServingError


class Client:
    def __init__(self, gone: bool) -> None:
        self.gone = gone

    async def is_disconnected(self) -> bool:
        return self.gone


def requests() -> list[SimpleNamespace]:
    return [SimpleNamespace(prompt_ids=[1, 2], cancelled=False)]


def test_a_request_whose_client_disconnected_is_cancelled_and_answers_nothing(monkeypatch):
    monkeypatch.setattr(openai_routes, "DISCONNECT_POLL_S", 0.01)
    waiting = requests()
    done = asyncio.run(openai_routes._collect(asyncio.Queue(), waiting, Client(gone=True), timeout_s=5))
    assert done is None and waiting[0].cancelled


def test_a_request_past_the_timeout_is_a_504_and_is_cancelled(monkeypatch):
    monkeypatch.setattr(openai_routes, "DISCONNECT_POLL_S", 0.01)
    waiting = requests()
    with pytest.raises(ServingError, match=r"longer than 0\.05 s") as err:
        asyncio.run(openai_routes._collect(asyncio.Queue(), waiting, Client(gone=False), timeout_s=0.05))
    assert err.value.status == 504 and waiting[0].cancelled


def test_a_disconnect_is_noticed_while_tokens_keep_coming(monkeypatch):
    from modelyard.generation.engine import Event

    monkeypatch.setattr(openai_routes, "DISCONNECT_POLL_S", 0.05)
    waiting = requests()

    async def decode_forever() -> list | None:
        events: asyncio.Queue = asyncio.Queue()

        async def tokens() -> None:
            while True:
                events.put_nowait((0, Event(0, "a", None, 2, 1)))
                await asyncio.sleep(0.001)

        producer = asyncio.create_task(tokens())
        try:
            return await openai_routes._collect(events, waiting, Client(gone=True), timeout_s=5)
        finally:
            producer.cancel()

    assert asyncio.run(decode_forever()) is None and waiting[0].cancelled
