"""Turning CTC frame posteriors into text: the character vocabulary, greedy decoding, and prefix beam search with
an optional character n-gram language model and a lexicon bias for domain words (drug or product names).

The n-gram model is counted from the training transcripts plus the domain lexicon, so words the acoustic model
half-hears are pulled towards spellings the user's domain actually has; the lexicon bias adds a bonus for each
character that continues a lexicon word, which keeps such prefixes in the beam until they complete.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

BLANK = 0
NEG_INF = -1e30


def clean_transcript(text: str) -> str:
    """The form the model learns to write: NFKC, lower case, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", str(text)).lower().replace("’", "'").split())


def build_alphabet(texts: list[str], limit: int = 8000) -> list[str]:
    """The characters of the training transcripts, most frequent first (at most `limit`), after the blank."""
    counts = Counter(ch for text in texts for ch in clean_transcript(text))
    return ["<blank>", *sorted(ch for ch, _ in counts.most_common(limit))]


class CharNgram:
    """A character n-gram model with Witten-Bell interpolation: P(c|h) mixes the longest context's counts with
    the shorter contexts' estimates by how much that context has been seen. `^` pads the start."""

    def __init__(self, order: int, counts: dict[str, dict[str, int]] | None = None) -> None:
        self.order = order
        self.counts: dict[str, Counter] = defaultdict(Counter, {h: Counter(c) for h, c in (counts or {}).items()})
        self._totals = {h: (sum(c.values()), len(c)) for h, c in self.counts.items()}
        self._cache: dict[tuple[str, str], float] = {}
        self.vocabulary = max(1, len(self.counts.get("", {})))

    def add(self, text: str, weight: int = 1) -> None:
        padded = "^" * (self.order - 1) + text + "$"
        for i in range(self.order - 1, len(padded)):
            for n in range(self.order):
                self.counts[padded[i - n : i]][padded[i]] += weight
        self._totals = {h: (sum(c.values()), len(c)) for h, c in self.counts.items()}
        self.vocabulary = max(1, len(self.counts.get("", {})))
        self._cache.clear()

    def logprob(self, history: str, char: str) -> float:
        history = ("^" * (self.order - 1) + history)[-(self.order - 1) :] if self.order > 1 else ""
        key = (history, char)
        if key not in self._cache:
            prob = 1.0 / (self.vocabulary + 1)
            for n in range(0, self.order):
                h = history[len(history) - n :] if n else ""
                total, types = self._totals.get(h, (0, 0))
                if total:
                    lam = total / (total + types)
                    prob = lam * self.counts[h][char] / total + (1 - lam) * prob
            self._cache[key] = math.log(prob)
        return self._cache[key]

    def state(self) -> dict[str, Any]:
        return {"order": self.order, "counts": {h: dict(c) for h, c in self.counts.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CharNgram:
        return cls(int(state["order"]), state["counts"])


def train_ngram(texts: list[str], lexicon: list[str], order: int, lexicon_weight: int = 5) -> CharNgram:
    """Counted from the transcripts, each lexicon entry added `lexicon_weight` times."""
    model = CharNgram(order)
    for text in texts:
        model.add(clean_transcript(text))
    for term in lexicon:
        model.add(clean_transcript(term), lexicon_weight)
    return model


def lexicon_prefixes(lexicon: list[str]) -> set[str]:
    """Every prefix of every word of the lexicon (the trie, flattened)."""
    return {word[:i] for term in lexicon for word in clean_transcript(term).split() for i in range(1, len(word) + 1)}


@dataclass
class DecodeOptions:
    method: str = "greedy"  # greedy | beam
    beam_size: int = 8
    lm_weight: float = 0.0
    lexicon_bonus: float = 0.0
    insertion_bonus: float = 0.0
    prune: float = -8.0  # characters whose frame log-probability is below this are not tried


def greedy(log_probs: np.ndarray, alphabet: list[str]) -> str:
    """Best class per frame, repeats merged, blanks dropped. log_probs (T, V)."""
    best = log_probs.argmax(-1)
    out, previous = [], BLANK
    for index in best:
        if index != previous and index != BLANK:
            out.append(alphabet[index])
        previous = index
    return " ".join("".join(out).split())


def beam_search(
    log_probs: np.ndarray,
    alphabet: list[str],
    options: DecodeOptions,
    lm: CharNgram | None = None,
    prefixes: set[str] | None = None,
) -> str:
    """CTC prefix beam search (Hannun et al. 2014) with shallow fusion of a character LM and a lexicon bonus.
    Each beam entry keeps log P(prefix ending in blank) and log P(ending in a character), LM and bonus included."""
    beams: dict[str, tuple[float, float]] = {"": (0.0, NEG_INF)}
    use_lm = lm is not None and options.lm_weight > 0
    use_lexicon = bool(prefixes) and options.lexicon_bonus > 0
    for frame in log_probs:
        candidates = [int(i) for i in np.flatnonzero(frame > options.prune) if i != BLANK]
        blank = float(frame[BLANK])
        nxt: dict[str, list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (p_b, p_nb) in beams.items():
            entry = nxt[prefix]
            entry[0] = np.logaddexp(entry[0], np.logaddexp(p_b, p_nb) + blank)
            last = prefix[-1] if prefix else None
            for index in candidates:
                char, p = alphabet[index], float(frame[index])
                if char == last:
                    entry[1] = np.logaddexp(entry[1], p_nb + p)  # repeat without a blank: the same prefix
                    extend_from = p_b
                else:
                    extend_from = np.logaddexp(p_b, p_nb)
                extended = prefix + char
                extra = 0.0
                if use_lm:
                    extra += options.lm_weight * lm.logprob(prefix, char)
                if use_lexicon and char != " " and extended.rsplit(" ", 1)[-1] in prefixes:
                    extra += options.lexicon_bonus
                target = nxt[extended]
                target[1] = np.logaddexp(target[1], extend_from + p + extra + options.insertion_bonus)
        ranked = sorted(nxt.items(), key=lambda kv: np.logaddexp(kv[1][0], kv[1][1]), reverse=True)
        beams = {k: (v[0], v[1]) for k, v in ranked[: options.beam_size]}
    best = max(beams.items(), key=lambda kv: np.logaddexp(kv[1][0], kv[1][1]))[0]
    return " ".join(best.split())


def decode(
    log_probs: np.ndarray,
    alphabet: list[str],
    options: DecodeOptions,
    lm: CharNgram | None = None,
    prefixes: set[str] | None = None,
) -> str:
    if options.method == "beam":
        return beam_search(log_probs, alphabet, options, lm, prefixes)
    return greedy(log_probs, alphabet)
