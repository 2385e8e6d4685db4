"""Speech recognition metrics: word and character error rates (jiwer's alignments), bootstrap intervals over
utterances, real-time factor, and the aligned reference/hypothesis pairs the report shows.

Both sides are normalised the same way before scoring. CER compares the cleaned text (`clean`: lower case,
punctuation dropped, runs of spaces made one; spaces count as characters, as in jiwer). WER compares words
(`normalize`) after two more steps, so a transcriber that writes numbers as digits is not charged for it: number
words from zero to ninety-nine become digits ("oh" = 0, "twenty five" = "twenty-five" = 25), and every number is
then compared digit by digit ("Seven-one, 3" = "7 1 3" = "713" = "seven one three"; "ten" = "10" = "1 0").
"hundred", "thousand" and ordinals stay words. Chinese, Japanese and Korean characters count as one word each
(text in those languages has no spaces), which makes WER equal CER there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = {w: i for i, w in enumerate(UNITS)} | {"oh": 0} | {w: 10 + i for i, w in enumerate(TEENS)}
NUMBER_WORDS |= {w: 20 + 10 * i for i, w in enumerate(TENS)}
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"([{CJK}])")
_KEEP = re.compile(rf"[^\w'\s{CJK}]")
_DIGITS = re.compile(r"(?<=\d)(?=\d)")


def clean(text: str) -> str:
    """The form CER compares: lower case, punctuation dropped, one space between words (see the module docstring)."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = _KEEP.sub(" ", text.replace("\u2019", "'"))
    return " ".join(w for w in (w.strip("'") for w in text.split()) if w)


def _numbers(words: list[str]) -> list[str]:
    """Number words as digits: a tens word and the unit after it make one number (twenty five = 25)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word, following = words[i], words[i + 1] if i + 1 < len(words) else ""
        if word in TENS and following in UNITS[1:]:
            out.append(str(NUMBER_WORDS[word] + NUMBER_WORDS[following]))
            i += 2
        else:
            out.append(str(NUMBER_WORDS[word]) if word in NUMBER_WORDS else word)
            i += 1
    return out


def normalize(text: str) -> str:
    """The form WER compares (see the module docstring)."""
    text = " ".join(_numbers(clean(text).split()))
    return " ".join(_DIGITS.sub(" ", _CJK_CHAR.sub(r" \1 ", text)).split())


def _char_errors(reference: str, hypothesis: str) -> int:
    """Character edits between two cleaned texts (spaces included); every character when one side is empty."""
    import jiwer

    if not reference or not hypothesis:
        return len(reference) + len(hypothesis)
    chars = jiwer.process_characters(reference, hypothesis)
    return chars.substitutions + chars.deletions + chars.insertions


@dataclass
class Scored:
    """One utterance: error counts and the alignment (equal / substitute / delete / insert spans)."""

    reference: list[str]
    hypothesis: list[str]
    word_errors: int
    char_errors: int
    chars: int
    ops: list[tuple[str, str, str]]  # (kind, reference words, hypothesis words)

    @property
    def words(self) -> int:
        return len(self.reference)


def score(reference: str, hypothesis: str) -> Scored:
    """Error counts of one utterance after normalisation; an empty reference counts every hypothesis word."""
    import jiwer

    ref_text, hyp_text = clean(reference), clean(hypothesis)
    ref, hyp = normalize(reference), normalize(hypothesis)
    ref_words, hyp_words = ref.split(), hyp.split()
    char_errors = _char_errors(ref_text, hyp_text)
    if not ref_words:
        ops = [("insert", "", hyp)] if hyp_words else []
        return Scored(ref_words, hyp_words, len(hyp_words), char_errors, len(ref_text), ops)
    if not hyp_words:
        return Scored(ref_words, hyp_words, len(ref_words), char_errors, len(ref_text), [("delete", ref, "")])
    words = jiwer.process_words(ref, hyp)
    ops = [
        (
            chunk.type,
            " ".join(ref_words[chunk.ref_start_idx : chunk.ref_end_idx]),
            " ".join(hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]),
        )
        for chunk in words.alignments[0]
    ]
    word_errors = words.substitutions + words.deletions + words.insertions
    return Scored(ref_words, hyp_words, word_errors, char_errors, len(ref_text), ops)


def _pooled(scored: list[Scored]) -> dict[str, Any]:
    """WER and CER pooled over utterances (as jiwer and every ASR paper count them), with counts beside them."""
    words = sum(s.words for s in scored)
    return {
        "wer": round(sum(s.word_errors for s in scored) / max(words, 1), 5),
        "cer": round(sum(s.char_errors for s in scored) / max(sum(s.chars for s in scored), 1), 5),
        "sentence_error_rate": round(float(np.mean([s.word_errors > 0 for s in scored])) if scored else 0.0, 5),
        "utterances": len(scored),
        "reference_words": words,
    }


def speech_metrics(
    references: list[str],
    hypotheses: list[str],
    audio_seconds: float = 0.0,
    compute_seconds: float = 0.0,
    speakers: list[str] | None = None,
) -> dict[str, Any]:
    """`wer`, `cer`, `sentence_error_rate` and `rtf` (compute time / audio time; 0.1 = ten times faster than real
    time); with the `speakers` of the utterances, when there are several, `per_speaker` WER and CER, worst voice
    first: which voices a recogniser fails on, where the pooled figure hides it."""
    scored = [score(r, h) for r, h in zip(references, hypotheses, strict=True)]
    out = _pooled(scored)
    if audio_seconds > 0:
        out["rtf"] = round(compute_seconds / audio_seconds, 4)
        out["audio_seconds"] = round(audio_seconds, 2)
    if speakers is not None and len(set(speakers)) > 1:
        groups: dict[str, list[Scored]] = {}
        for speaker, scored_one in zip(speakers, scored, strict=True):
            groups.setdefault(str(speaker), []).append(scored_one)
        voices = {name: _pooled(rows) for name, rows in groups.items()}
        keep = ("wer", "cer", "utterances", "reference_words")
        ranked = sorted(voices.items(), key=lambda item: (-item[1]["wer"], item[0]))
        out["per_speaker"] = {name: {k: m[k] for k in keep} for name, m in ranked}
    return out


def error_parts(references: list[str], hypotheses: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-utterance (errors, reference size) for `bootstrap_ratios`: WER and CER resampled by utterance."""
    scored = [score(r, h) for r, h in zip(references, hypotheses, strict=True)]
    return {
        "wer": (np.array([s.word_errors for s in scored]), np.array([s.words for s in scored])),
        "cer": (np.array([s.char_errors for s in scored]), np.array([s.chars for s in scored])),
    }


def speech_intervals(references: list[str], hypotheses: list[str]) -> dict[str, dict[str, float]]:
    """95% percentile-bootstrap intervals of WER and CER over utterances (1,000 resamples)."""
    from modelyard.metrics.stats import bootstrap_ratios

    return bootstrap_ratios(error_parts(references, hypotheses))
