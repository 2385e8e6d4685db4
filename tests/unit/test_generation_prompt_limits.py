"""A prompt that cannot fit the model's context, or a chat of too many messages, is refused before it is queued:
an 8192-position model once prefilled 140,000 tokens of empty messages and held every later request up."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelyard.errors import DataError
from modelyard.generation.generator import TextGenerator
from modelyard.serving.errors import ServingError
from modelyard.serving.openai_routes import ChatRequest, CompletionRequest, _requests
from modelyard.serving.settings import ServeSettings


class Characters:
    """One token per character."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(map(chr, ids))


def render(messages: list[dict[str, str]]) -> str:
    return "".join(f"<{m['role']}>{m['content']}</>" for m in messages)  # 9 template tokens for an empty user turn


def service(max_context: int | None = 64, **settings) -> SimpleNamespace:
    decoder = SimpleNamespace(eos_ids={0}, max_context=max_context, start=None)
    generator = TextGenerator(decoder, Characters(), render)
    config = ServeSettings(log_predictions=False, drift_interval_s=0, **settings)
    return SimpleNamespace(model=SimpleNamespace(learner=SimpleNamespace(generator=generator)), settings=config)


def test_a_chat_of_empty_messages_too_long_for_the_context_is_a_422_naming_the_token_counts():
    empty = [{"role": "user", "content": ""}] * 10
    with pytest.raises(ServingError) as err:
        _requests(service(), [empty], ChatRequest(messages=empty), None)
    assert err.value.status == 422
    assert err.value.message.startswith("messages: 90 prompt tokens with the chat template; this model reads at most")


def test_a_completion_prompt_that_leaves_no_room_for_an_answer_is_a_422_naming_it():
    prompts = ["short", "x" * 64]
    with pytest.raises(ServingError, match=r"^prompt\.1: 64 prompt tokens; .* at most 63 \(one left") as err:
        _requests(service(), prompts, CompletionRequest(prompt=prompts), None)
    assert err.value.status == 422


def test_a_prompt_one_token_short_of_the_context_is_accepted():
    (request,) = _requests(service(), ["x" * 63], CompletionRequest(prompt="x"), None)
    assert len(request.prompt_ids) == 63


def test_a_chat_over_max_messages_is_a_422_before_anything_is_rendered():
    many = [{"role": "user", "content": "hi"}] * 5
    with pytest.raises(ServingError, match=r"^messages: 5 messages; the limit is 4$"):
        _requests(service(max_context=None, max_messages=4), [many], ChatRequest(messages=many), None)


def test_the_python_api_refuses_a_prompt_too_long_for_the_context_too_naming_it_as_the_server_does():
    with pytest.raises(DataError, match=r"^inputs\.1: 100 prompt tokens; .*at most 63"):
        service().model.learner.generator.complete(["fits", "x" * 100])


def test_an_image_part_in_a_chat_is_a_422_naming_it_never_silently_dropped():
    from modelyard.serving.openai_routes import _text_only

    body = ChatRequest(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url"}]},
        ]
    )
    with pytest.raises(ServingError, match=r"^messages\.1\.content\.1: a 'image_url' part; this model reads only text"):
        _text_only(body.messages)
