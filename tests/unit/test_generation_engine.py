"""Sampling options and streaming: deterministic greedy decoding, stop sequences, budgets, seeds, batching."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from modelyard.generation.engine import Request, stream_batch
from modelyard.generation.options import GenerationOptions
from modelyard.generation.sampling import filter_top_p, next_token, penalise_repeats

ALPHABET = "abcdefgh\n"
EOS = len(ALPHABET)


class CharCodec:
    def encode(self, text: str) -> list[int]:
        return [ALPHABET.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(ALPHABET[i] for i in ids)


class ScriptedDecoder:
    """A 'model' that strongly prefers to continue a fixed script after the last token it saw."""

    eos_ids = frozenset({EOS})
    max_context = None

    def __init__(self, script: str) -> None:
        self.script = [ALPHABET.index(c) for c in script] + [EOS]
        self.batch_sizes: list[int] = []

    def start(self, prompts):
        decoder = self

        class Session:
            def __init__(self) -> None:
                self.steps = [0] * len(prompts)
                self.rows = list(range(len(prompts)))

            def logits(self):
                decoder.batch_sizes.append(len(self.rows))
                out = torch.zeros(len(self.rows), EOS + 1)
                for j, r in enumerate(self.rows):
                    out[j, decoder.script[min(self.steps[r], len(decoder.script) - 1)]] = 10.0
                return out

            def advance(self, tokens):
                for r in self.rows:
                    self.steps[r] += 1

            def keep(self, rows):
                self.rows = [self.rows[i] for i in rows.tolist()]

        return Session()


def run(decoder, *requests):
    texts, finals = ["" for _ in requests], [None for _ in requests]
    for event in stream_batch(decoder, CharCodec(), list(requests)):
        texts[event.index] += event.text
        if event.finish_reason:
            finals[event.index] = event
    return texts, finals


def test_greedy_decoding_follows_the_likeliest_tokens_and_stops_at_end_of_text():
    texts, finals = run(ScriptedDecoder("abc"), Request([0], GenerationOptions(temperature=0)))
    assert texts == ["abc"] and finals[0].finish_reason == "stop" and finals[0].completion_tokens == 3


def test_top_k_one_is_deterministic_even_at_high_temperature():
    decoder = ScriptedDecoder("hgfedcba")
    options = GenerationOptions(temperature=5.0, top_k=1)
    assert run(decoder, Request([0], options))[0] == run(decoder, Request([0], options))[0] == ["hgfedcba"]


def test_max_new_tokens_ends_the_text_with_finish_reason_length():
    texts, finals = run(ScriptedDecoder("abcdefgh"), Request([0], GenerationOptions(max_new_tokens=3, temperature=0)))
    assert texts == ["abc"] and finals[0].finish_reason == "length"


def test_a_stop_sequence_ends_the_text_before_it_even_across_tokens():
    texts, finals = run(ScriptedDecoder("abc\nde"), Request([0], GenerationOptions(temperature=0, stop=["c\nd"])))
    assert texts == ["ab"] and finals[0].finish_reason == "stop"


def test_text_that_may_begin_a_stop_sequence_is_held_back_until_it_does_not():
    pieces = [
        e.text
        for e in stream_batch(
            ScriptedDecoder("abab"),
            CharCodec(),
            [Request([0], GenerationOptions(temperature=0, stop=["bc"]))],
        )
    ]
    assert pieces == ["a", "ba", "b"]  # each 'b' waits until the next token shows it does not start "bc"


def test_requests_decode_together_and_leave_the_batch_when_done():
    decoder = ScriptedDecoder("abcdef")
    texts, finals = run(
        decoder,
        Request([0], GenerationOptions(max_new_tokens=2, temperature=0)),
        Request([1, 2], GenerationOptions(max_new_tokens=5, temperature=0)),
    )
    assert texts == ["ab", "abcde"] and [f.finish_reason for f in finals] == ["length", "length"]
    assert decoder.batch_sizes[:2] == [2, 2] and decoder.batch_sizes[2:] == [1, 1, 1]
    assert finals[1].prompt_tokens == 2


def test_the_same_seed_gives_the_same_sample():
    logits = torch.randn(50)
    options = GenerationOptions(temperature=1.0, seed=7)
    draws = [next_token(logits, torch.tensor([]), options, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert draws[0] == draws[1]


def test_top_p_keeps_the_smallest_set_of_tokens_reaching_the_mass():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = torch.isfinite(filter_top_p(logits, 0.75))
    assert kept.tolist() == [True, True, False, False]


def test_repetition_penalty_makes_seen_tokens_less_likely():
    logits = torch.tensor([2.0, -1.0, 2.0])
    out = penalise_repeats(logits, torch.tensor([0, 1]), 2.0)
    assert out.tolist() == [1.0, -2.0, 2.0]


def test_invalid_options_are_refused_with_the_field_named():
    with pytest.raises(ValidationError, match="temperature"):
        GenerationOptions(temperature=-1)
    with pytest.raises(ValidationError, match="stop"):
        GenerationOptions(stop=[""])


def test_a_request_that_breaks_its_batch_fails_alone_and_the_others_are_answered():
    from modelyard.generation.batcher import GenerationBatcher

    class Generator:
        """Decodes a batch with the scripted model, unless a request in it asks for a forbidden prompt."""

        def run(self, requests):
            if any(r.prompt_ids == [7] for r in requests):
                raise RuntimeError("this prompt cannot be decoded")
            return stream_batch(ScriptedDecoder("abc"), CharCodec(), list(requests))

    batcher = GenerationBatcher(Generator(), max_batch_size=8, max_wait_ms=200)
    results: dict[int, list] = {i: [] for i in range(3)}
    for i, prompt in enumerate(([0], [7], [1])):
        batcher.submit(Request(prompt, GenerationOptions(max_new_tokens=3, temperature=0)), results[i].append)
    batcher.close()
    assert max(batcher.batch_sizes) == 3  # they were decoded together first
    assert isinstance(results[1][0], RuntimeError) and len(results[1]) == 1
    for i in (0, 2):
        assert "".join(e.text for e in results[i]) == "abc" and results[i][-1].finish_reason == "length"
