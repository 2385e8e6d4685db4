"""Speech recognition metrics: word and character error rates (jiwer's alignments), bootstrap intervals over
utterances, real-time factor, and the aligned reference/hypothesis pairs the report shows.

Both sides are normalised the same way before scoring: lower case, punctuation dropped, number words written as
digits and runs of digits split into single digits ("Seven-one, 3" = "7 1 3" = "seven one three"), so a
transcriber that writes numbers as digits is not charged for it. Chinese, Japanese and Korean characters count
as one word each (text in those languages has no spaces), which makes WER equal CER there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

NUMBER_WORDS = {
    w: str(i) for i, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
} | {"oh": "0"}
CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"([{CJK}])")
_KEEP = re.compile(rf"[^\w'\s{CJK}]")
_DIGITS = re.compile(r"(?<=\d)(?=\d)")


def normalize(text: str) -> str:
    """The form both sides are compared in (see the module docstring)."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = _KEEP.sub(" ", text.replace("’", "'"))
    words = [NUMBER_WORDS.get(w.strip("'"), w.strip("'")) for w in text.split()]
    text = " ".join(w for w in words if w)
    return " ".join(_DIGITS.sub(" ", _CJK_CHAR.sub(r" \1 ", text)).split())


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

    ref, hyp = normalize(reference), normalize(hypothesis)
    ref_words, hyp_words = ref.split(), hyp.split()
    ref_chars, hyp_chars = ref.replace(" ", ""), hyp.replace(" ", "")
    if not ref_words:
        ops = [("insert", "", hyp)] if hyp_words else []
        return Scored(ref_words, hyp_words, len(hyp_words), len(hyp_chars), 0, ops)
    if not hyp_words:
        return Scored(ref_words, hyp_words, len(ref_words), len(ref_chars), len(ref_chars), [("delete", ref, "")])
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref_chars, hyp_chars)
    ops = [
        (
            chunk.type,
            " ".join(ref_words[chunk.ref_start_idx : chunk.ref_end_idx]),
            " ".join(hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx]),
        )
        for chunk in words.alignments[0]
    ]
    word_errors = words.substitutions + words.deletions + words.insertions
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    return Scored(ref_words, hyp_words, word_errors, char_errors, len(ref_chars), ops)


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
