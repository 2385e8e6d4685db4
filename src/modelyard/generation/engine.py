"""Batched, streaming KV-cache decoding for any causal LM behind the small `Decoder` protocol.

Several requests decode together: one forward pass per step for the whole batch, each row sampling with its
own options and seed. Rows leave the batch (and the KV cache) as soon as they finish. Text is streamed as
deltas; text that could be the start of a stop sequence, or half of a multi-byte character, is held back until
it is known not to be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

from modelyard.generation.options import GenerationOptions
from modelyard.generation.sampling import next_token

FinishReason = Literal["stop", "length"]
_NONE = torch.zeros(0, dtype=torch.long)


class Decoder(Protocol):
    """A model's decoding steps; `start` returns a stateful session for one batch of prompts."""

    eos_ids: set[int]
    max_context: int | None  # longest prompt + completion the model can attend to (None: unbounded)

    def start(self, prompts: Sequence[Sequence[int]]) -> Session: ...


class Session(Protocol):
    def logits(self) -> torch.Tensor:
        """(B, V) logits for the next token of every live row."""
        ...

    def advance(self, tokens: torch.Tensor) -> None:
        """Feed one new token per live row (B,)."""
        ...

    def keep(self, rows: torch.Tensor) -> None:
        """Drop all rows but `rows` (indices into the live rows) from the batch and its cache."""
        ...


class Constraint(Protocol):
    """Which tokens a request may produce next (structured output); see `modelyard.generation.structured`."""

    def allowed(self, generated: Sequence[int]) -> list[int]: ...


class TextCodec(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass
class Request:
    prompt_ids: list[int]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    constraint: Constraint | None = None  # masks the logits of every step to the tokens it allows
    cancelled: bool = False  # set from another thread when the client went away


@dataclass
class Event:
    """A piece of one request's output; the last event of a request has `finish_reason` set."""

    index: int  # which request of the batch
    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class _Row:
    index: int
    request: Request
    generator: torch.Generator | None
    seen: list[int]
    ids: list[int] = field(default_factory=list)
    sent: int = 0  # characters of decoded text already emitted


def _seen(row: _Row) -> torch.Tensor:
    """Token ids the repetition penalty looks at (none when it is off)."""
    return torch.tensor(row.seen) if row.request.options.repetition_penalty != 1.0 else _NONE


def _masked(logits: torch.Tensor, row: _Row) -> torch.Tensor:
    """`logits` (V,) with every token the row's constraint forbids set to -inf."""
    if row.request.constraint is None:
        return logits
    allowed = torch.tensor(row.request.constraint.allowed(row.ids), dtype=torch.long, device=logits.device)
    return torch.full_like(logits, float("-inf")).index_copy_(0, allowed, logits.index_select(0, allowed))


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters might still become a stop sequence (or complete a character)."""
    hold = 1 if text.endswith("\ufffd") else 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                hold = max(hold, n)
                break
    return hold


def _emit(row: _Row, codec: TextCodec, finished: bool) -> tuple[str, bool]:
    """The new text of `row` since the last call, and whether a stop sequence ended it."""
    text = codec.decode(row.ids)
    stops = row.request.options.stop
    longest = max((len(s) for s in stops), default=0)
    start = max(0, row.sent - longest)
    cuts = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    if cuts:
        delta, row.sent = text[row.sent : min(cuts)], len(text)
        return delta, True
    end = len(text) if finished else len(text) - _held_back(text, stops)
    if end <= row.sent:
        return "", False
    delta, row.sent = text[row.sent : end], end
    return delta, False


@torch.inference_mode()  # per resume (torch wraps generators): no mode leaks to work between slices
def stream_batch(
    decoder: Decoder,
    codec: TextCodec,
    requests: Sequence[Request],
    on_step: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """Decode all `requests` together, yielding text deltas as they come and one final event per request."""
    rows = []
    for i, req in enumerate(requests):
        generator = None
        if req.options.seed is not None:
            generator = torch.Generator().manual_seed(req.options.seed)
        rows.append(_Row(i, req, generator, list(req.prompt_ids)))
    budget = [r.options.max_new_tokens for r in requests]
    if decoder.max_context is not None:
        budget = [
            max(1, min(b, decoder.max_context - len(r.prompt_ids))) for b, r in zip(budget, requests, strict=True)
        ]
    session = decoder.start([r.prompt_ids for r in requests])
    while rows:
        logits = session.logits()
        chosen, keep = [], []
        for j, row in enumerate(rows):
            token = next_token(_masked(logits[j], row), _seen(row), row.request.options, row.generator)
            reason: FinishReason | None = None
            if token in decoder.eos_ids:
                reason = "stop"
            else:
                row.ids.append(token)
                row.seen.append(token)
                if len(row.ids) >= budget[row.index]:
                    reason = "length"
            delta, stopped = _emit(row, codec, finished=reason is not None)
            if stopped:
                reason = "stop"
            if reason is None and row.request.cancelled:
                reason = "stop"
            if delta or reason:
                yield Event(row.index, delta, reason, len(row.request.prompt_ids), len(row.ids))
            if reason is None:
                keep.append(j)
                chosen.append(token)
        if on_step is not None:
            on_step(len(rows))
        if len(keep) < len(rows):
            rows = [rows[j] for j in keep]
            if not rows:
                break
            session.keep(torch.tensor(keep))
        session.advance(torch.tensor(chosen))
