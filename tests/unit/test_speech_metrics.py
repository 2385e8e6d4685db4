"""WER/CER with number normalisation, per-utterance alignments, intervals, and CTC decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.metrics.speech import clean, normalize, score, speech_intervals, speech_metrics
from modelyard.models.ctc_decoder import (
    CharNgram,
    DecodeOptions,
    beam_search,
    build_alphabet,
    greedy,
    lexicon_prefixes,
    train_ngram,
)


def test_numbers_written_as_words_or_digits_compare_equal():
    assert normalize("Seven-one, 3!") == normalize("seven one three") == "7 1 3"
    assert normalize("Call 415.") == "call 4 1 5"
    assert normalize("It's  OK") == "it's ok"


def test_multi_digit_numbers_compare_equal_as_words_or_digits():
    assert normalize("ten") == normalize("10") == "1 0"
    assert normalize("Twenty-five") == normalize("twenty five") == normalize("25") == "2 5"
    assert normalize("seventeen ninety oh") == "1 7 9 0 0"
    assert speech_metrics(["twenty five"], ["25"])["wer"] == 0.0


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [("seven", "sevem"), ("ten", "10"), ("ice cream", "icecream"), ("Seven one, three!", "seven one three")],
)
def test_cer_counts_characters_and_spaces_of_the_text_as_written_like_jiwer(reference, hypothesis):
    import jiwer

    expected = jiwer.cer(clean(reference), clean(hypothesis))
    assert speech_metrics([reference], [hypothesis])["cer"] == pytest.approx(expected, abs=1e-5)


def test_chinese_characters_count_as_words():
    assert normalize("今天天气好") == "今 天 天 气 好"
    assert speech_metrics(["今天天气好"], ["今天天气"])["wer"] == pytest.approx(0.2)


def test_word_and_character_errors_are_counted_and_aligned():
    scored = score("one two three four", "one too three four five")
    assert scored.word_errors == 2 and scored.words == 4
    assert [op[0] for op in scored.ops] == ["equal", "substitute", "equal", "insert"]
    assert ("substitute", "2", "too") in scored.ops


def test_an_empty_reference_or_hypothesis_counts_every_word():
    assert score("", "hello there").word_errors == 2
    assert score("hello there", "").word_errors == 2 and score("hello there", "").ops == [("delete", "hello there", "")]


def test_metrics_pool_errors_over_utterances_and_give_the_real_time_factor():
    m = speech_metrics(["a b c d", "e f"], ["a b c d", "e x"], audio_seconds=10.0, compute_seconds=2.0)
    assert m["wer"] == pytest.approx(1 / 6, abs=1e-4) and m["sentence_error_rate"] == 0.5 and m["rtf"] == 0.2


def test_per_speaker_error_rates_split_the_pooled_ones_worst_voice_first():
    refs, hyps = ["1 2 3 4", "5 6", "7 8 9 0"], ["1 2 3 4", "5 6", "7 8 1 1"]
    metrics = speech_metrics(refs, hyps, speakers=["ann", "ann", "bo"])
    voices = metrics["per_speaker"]
    assert list(voices) == ["bo", "ann"]
    assert voices["bo"] == {"wer": 0.5, "cer": 0.28571, "utterances": 1, "reference_words": 4}  # spaces count
    assert voices["ann"]["wer"] == 0.0 and voices["ann"]["utterances"] == 2
    assert metrics["wer"] == pytest.approx(2 / 10)
    assert "per_speaker" not in speech_metrics(refs, hyps, speakers=["ann"] * 3)  # one voice: the pooled figures


def test_bootstrap_intervals_bracket_the_pooled_wer():
    refs = [f"{i} {i + 1} {i + 2}" for i in range(40)]
    hyps = [r if i % 4 else r.replace(" ", " x ", 1) for i, r in enumerate(refs)]
    found = speech_intervals(refs, hyps)
    wer = speech_metrics(refs, hyps)["wer"]
    assert found["wer"]["low"] <= wer <= found["wer"]["high"] and found["wer"]["high"] > found["wer"]["low"]


def _posteriors(path: list[int], vocab: int, peak: float = 0.9) -> np.ndarray:
    """(T, V) log-probabilities putting `peak` on one class per frame."""
    probs = np.full((len(path), vocab), (1 - peak) / (vocab - 1))
    probs[np.arange(len(path)), path] = peak
    return np.log(probs)


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    alphabet = build_alphabet(["ab a"])  # blank, ' ', a, b
    a, b, space = alphabet.index("a"), alphabet.index("b"), alphabet.index(" ")
    path = [a, a, 0, a, b, b, 0, space, 0, a]
    assert greedy(_posteriors(path, len(alphabet)), alphabet) == "aab a"


def test_beam_search_agrees_with_greedy_on_confident_frames():
    alphabet = build_alphabet(["hello world"])
    path = [alphabet.index(c) for c in "helo wor"] + [0]
    log_probs = _posteriors(path, len(alphabet))
    assert beam_search(log_probs, alphabet, DecodeOptions(method="beam")) == greedy(log_probs, alphabet)


def test_the_lexicon_bias_pulls_an_ambiguous_word_to_the_domain_spelling():
    alphabet = build_alphabet(["metformin metfarmin"])
    frames = [[alphabet.index(c)] for c in "metf"] + [[alphabet.index("a"), alphabet.index("o")]]
    frames += [[alphabet.index(c)] for c in "rmin"]
    probs = np.full((len(frames), len(alphabet)), 1e-4)
    for t, options in enumerate(frames):
        probs[t, options[0]] = 0.6 if len(options) > 1 else 0.99
        if len(options) > 1:
            probs[t, options[1]] = 0.39
    log_probs = np.log(probs / probs.sum(1, keepdims=True))
    plain = DecodeOptions(method="beam")
    biased = DecodeOptions(method="beam", lexicon_bonus=1.0)
    assert beam_search(log_probs, alphabet, plain) == "metfarmin"
    assert beam_search(log_probs, alphabet, biased, prefixes=lexicon_prefixes(["Metformin"])) == "metformin"


def test_the_character_ngram_is_a_distribution_and_survives_a_round_trip():
    lm = train_ngram(["one two three", "two three four"], ["metformin"], order=3)
    chars = sorted({c for h in lm.counts.values() for c in h})
    assert math.isclose(sum(math.exp(lm.logprob("tw", c)) for c in chars), 1.0, rel_tol=0.05)
    again = CharNgram.from_state(lm.state())
    assert again.logprob("thr", "e") == pytest.approx(lm.logprob("thr", "e"))
    assert lm.logprob("tw", "o") > lm.logprob("tw", "z")
