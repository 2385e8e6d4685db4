"""The token classification baseline: every word gets the tag it had most often in the training data (words
compared lower-cased), unseen words O. It measures how much of a test set is entities seen before: what the
model adds beyond memorisation is the difference."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from modelyard.data.entities import OUTSIDE, split_words, word_tags
from modelyard.metrics.entities import entity_metrics

if TYPE_CHECKING:
    import pandas as pd

HEADLINE = ("entity_f1", "entity_precision", "entity_recall", "macro_f1", "token_accuracy", "per_type")


def _words_and_tags(frame: pd.DataFrame) -> list[tuple[list[str], list[str]]]:
    out = []
    for text, entities in zip(frame["text"], frame["entities"], strict=True):
        words = split_words(text)
        out.append(([text[s:e].lower() for s, e in words], word_tags(text, entities, words)[0]))
    return out


def fit_memory(train: pd.DataFrame) -> dict[str, str]:
    """Word -> its most frequent training tag, for words tagged other than O at least once."""
    counts: dict[str, Counter] = {}
    for words, tags in _words_and_tags(train):
        for word, tag in zip(words, tags, strict=True):
            counts.setdefault(word, Counter())[tag] += 1
    memory = {}
    for word, seen in counts.items():
        tag, _ = max(seen.items(), key=lambda kv: (kv[1], kv[0] == OUTSIDE))  # ties go to O
        if tag != OUTSIDE:
            memory[word] = tag
    return memory


def memory_baseline(train: pd.DataFrame, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Fit on train, score each given split (what `baselines.most_frequent_tag` holds)."""
    memory = fit_memory(train)
    result = {}
    for name, frame in splits.items():
        if not len(frame):
            continue
        pairs = _words_and_tags(frame)
        predicted = [[memory.get(w, OUTSIDE) for w in words] for words, _ in pairs]
        metrics = entity_metrics([tags for _, tags in pairs], predicted)
        result[name] = {k: v for k, v in metrics.items() if k in HEADLINE}
    return result
