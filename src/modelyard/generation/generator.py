"""What a generating learner exposes: prompts or chat messages in, text (whole or streamed) out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from modelyard.errors import DataError
from modelyard.generation.engine import Decoder, Event, Request, TextCodec, stream_batch
from modelyard.generation.options import GenerationOptions
from modelyard.generation.structured import JsonConstraint, SchemaError, Vocabulary, check_answer, response_schema

Prompt = str | list[dict[str, str]]


class TextGenerator:
    """Turns prompts into token ids (chat messages through `render_chat`) and decodes them with `decoder`."""

    def __init__(
        self,
        decoder: Decoder,
        codec: TextCodec,
        render_chat: Callable[[list[dict[str, str]]], str],
        defaults: GenerationOptions | None = None,
        vocab_size: int | None = None,
    ) -> None:
        self.decoder = decoder
        self.codec = codec
        self.render_chat = render_chat
        self.defaults = defaults or GenerationOptions()
        # structured output needs the vocabulary's strings; built on the first request that asks for it
        self._vocabulary = Vocabulary(codec, vocab_size, decoder.eos_ids) if vocab_size else None

    def options(self, **overrides: Any) -> GenerationOptions:
        """The learner's default options with `overrides` (None values ignored) applied and validated."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return GenerationOptions.model_validate({**self.defaults.model_dump(), **given})

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids (a chat rendered by its template first). DataError when they leave no room for
        one new token in the model's context: such a prompt could only be answered after a long, useless prefill."""
        chat = not isinstance(prompt, str)
        ids = self.codec.encode(self.render_chat(prompt) if chat else prompt)
        limit = self.decoder.max_context
        if limit is not None and len(ids) >= limit:
            rendered = " with the chat template" if chat else ""
            raise DataError(
                f"{len(ids):,} prompt tokens{rendered}; this model reads at most {limit:,} tokens, so a prompt may "
                f"have at most {limit - 1:,} (one left for the answer): shorten it or drop earlier messages"
            )
        return ids

    def constraint(self, response_format: dict[str, Any] | None) -> JsonConstraint | None:
        """The token mask for an OpenAI-style `response_format` (None for free text); SchemaError when the
        format cannot be enforced."""
        schema = response_schema(response_format)
        if schema is None:
            return None
        if self._vocabulary is None:
            raise SchemaError("this model cannot constrain its output to JSON", "use a pretrained chat model bundle")
        return JsonConstraint(self._vocabulary, schema)

    def request(self, prompt: Prompt, response_format: dict[str, Any] | None = None, **options: Any) -> Request:
        return Request(self.prompt_ids(prompt), self.options(**options), self.constraint(response_format))

    def _numbered(self, index: int, prompt: Prompt, options: dict[str, Any]) -> Request:
        """`request`, a prompt it refuses named by its place among several (`inputs.N`, as the server names one)."""
        try:
            return self.request(prompt, **options)
        except DataError as err:
            raise DataError(f"inputs.{index}: {err.message}", err.hint) from None

    def run(self, requests: Sequence[Request]) -> Iterator[Event]:
        """Decode `requests` together (one batch), yielding their events interleaved."""
        return stream_batch(self.decoder, self.codec, requests)

    def stream(self, prompt: Prompt, **options: Any) -> Iterator[str]:
        """The answer's text as it is decoded. The request is checked now, before anything is decoded or shown;
        a constrained answer that ends invalid (cut by the token limit) raises AnswerError after its last piece."""
        return self._pieces(self.request(prompt, **options))

    def _pieces(self, request: Request) -> Iterator[str]:
        text = ""
        for event in self.run([request]):
            text += event.text
            if event.text:
                yield event.text
            if event.finish_reason and isinstance(request.constraint, JsonConstraint):
                check_answer(request.constraint.schema, text, event.finish_reason)

    def complete(self, prompts: Sequence[Prompt], **options: Any) -> list[dict[str, Any]]:
        """Whole completions for several prompts decoded as one batch: text, finish reason, token counts."""
        requests = [self._numbered(i, p, options) for i, p in enumerate(prompts)]
        out = [
            {"text": "", "finish_reason": None, "prompt_tokens": len(r.prompt_ids), "completion_tokens": 0}
            for r in requests
        ]
        for event in self.run(requests):
            item = out[event.index]
            item["text"] += event.text
            if event.finish_reason:
                item["finish_reason"] = event.finish_reason
                item["completion_tokens"] = event.completion_tokens
        return out
