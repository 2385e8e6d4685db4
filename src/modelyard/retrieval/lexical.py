"""BM25 over chunk texts (bm25s: sparse score matrices in numpy/scipy, saved as JSON and .npy without pickle).

Tokens are lower-cased words without English stop words, Snowball-stemmed (PyStemmer: "watered" matches
"water"); Chinese, Japanese and Korean runs, written without spaces, become their single characters and
character bigrams, the usual word-segmentation-free BM25 for CJK.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

LETTERS = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"  # kana, CJK ideographs, hangul (no punctuation)
TOKEN = re.compile(rf"([{LETTERS}]+)|[^\W_{LETTERS}]+")  # group 1: a run of CJK letters


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    stop, stem = _stopwords(), _stemmer().stemWord
    out: list[str] = []
    for match in TOKEN.finditer(text.lower()):
        word = match.group()
        if match.group(1):
            out.extend(word)
            out.extend(word[i : i + 2] for i in range(len(word) - 1))
        elif word not in stop:
            out.append(stem(word))
    return out


class Lexical:
    """A BM25 index whose rows are the chunks, in the index's order."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def build(cls, texts: list[str]) -> Lexical:
        import bm25s

        model = bm25s.BM25()
        model.index([tokenize(t) for t in texts], show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), load_corpus=False, mmap=False, allow_pickle=False))

    def save(self, folder: Path) -> None:
        self.model.save(str(folder), show_progress=False, allow_pickle=False)

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's idf of each (tokenised) term, from how many chunks hold it; a term no chunk holds gets the
        highest. The score matrix keeps one column per term, so its column lengths are the document frequencies."""
        vocab, indptr, n = self.model.vocab_dict, self.model.scores["indptr"], self.model.scores["num_docs"]
        out = {}
        for term in terms:
            column = vocab.get(term)
            df = 0 if column is None else int(indptr[column + 1] - indptr[column])
            out[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk (N,); words the collection never uses score nothing."""
        vocab = self.model.vocab_dict
        known = [t for t in tokenize(query) if t in vocab]
        if not known:
            return np.zeros(self.model.scores["num_docs"], dtype=np.float32)
        return np.asarray(self.model.get_scores(known), dtype=np.float32)
