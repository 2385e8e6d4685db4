"""A constrained answer is checked when it ends: cut by the token limit or left invalid, `generate` says so instead
of returning broken JSON as an answer; a schema it cannot enforce is refused before anything is decoded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from modelyard.generation.generator import TextGenerator
from modelyard.generation.structured import AnswerError, SchemaError, check_answer

VOCAB = 128
EOS = 0
SCHEMA = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}, "required": ["a"]}


def fmt(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}


class Characters:
    """One token per ASCII character; token 0 ends the text."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(map(chr, ids))


class Flat:
    """A 'model' that avoids control characters and whitespace and otherwise has no preference: greedy decoding
    takes the lowest printable token the mask allows."""

    eos_ids = frozenset({EOS})
    max_context = None

    def start(self, prompts):
        logits = torch.zeros(1, VOCAB)
        logits[0, : ord(" ") + 1] = -10.0  # control characters, whitespace and end-of-text
        return SimpleNamespace(logits=lambda: logits, advance=lambda tokens: None, keep=lambda rows: None)


def generator(vocab_size: int | None = VOCAB) -> TextGenerator:
    return TextGenerator(Flat(), Characters(), lambda messages: messages[-1]["content"], vocab_size=vocab_size)


def test_an_answer_cut_by_the_token_limit_is_an_error_saying_to_raise_max_new_tokens():
    pieces = generator().stream("hi", max_new_tokens=4, temperature=0, response_format=fmt(SCHEMA))
    with pytest.raises(AnswerError, match="hit the token limit before its JSON closed") as err:
        "".join(pieces)
    assert "--max-new-tokens" in err.value.hint


def test_an_answer_that_closes_its_json_is_returned_whole():
    text = "".join(generator().stream("hi", max_new_tokens=40, temperature=0, response_format=fmt(SCHEMA)))
    assert check_answer(SCHEMA, text, "stop") is None


def test_an_invalid_answer_that_stopped_names_why_it_does_not_validate():
    with pytest.raises(AnswerError, match=r"does not validate against the schema .*'a' is a required property"):
        check_answer(SCHEMA, "{}", "stop")


def test_a_schema_the_model_cannot_follow_is_refused_before_the_stream_is_read():
    with pytest.raises(SchemaError, match="cannot constrain"):
        generator(vocab_size=None).stream("hi", response_format=fmt(SCHEMA))  # not iterated: nothing decoded


@pytest.mark.parametrize(
    ("sent", "named"),
    [
        ({"logprobs": 0}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"echo": True}, "echo"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ],
)
def test_a_completion_field_the_server_would_ignore_is_a_400_naming_it(sent, named):
    from modelyard.serving.errors import ServingError
    from modelyard.serving.openai_routes import CompletionRequest, _sampling

    with pytest.raises(ServingError, match=f"^{named}: ") as err:
        _sampling(generator(), CompletionRequest(prompt="hi", **sent), None)
    assert err.value.status == 400


def test_completion_fields_at_values_that_change_nothing_are_accepted():
    from modelyard.serving.openai_routes import CompletionRequest, _sampling

    neutral = {"logprobs": False, "echo": False, "frequency_penalty": 0, "best_of": 1, "user": "u", "suffix": None}
    assert _sampling(generator(), CompletionRequest(prompt="hi", **neutral), 3).max_new_tokens == 3
