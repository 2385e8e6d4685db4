"""Metrics of generated text against references: ROUGE-L (summaries), BLEU and chrF (translation), SQuAD-style
exact match and token F1 (question answering), and a lexical faithfulness check against retrieved passages.

Tokenisation is one rule everywhere: lower-cased runs of letters and digits in any script, and every CJK
character a token of its own. For ASCII text this is exactly rouge-score's default tokenizer (which drops
every non-ASCII character, so Chinese would score nothing); there is no stemming. BLEU and chrF are sacrebleu's
corpus scores (0-100), with its "zh" tokenizer when the references contain CJK characters.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_HAS_CJK = re.compile(rf"[{_CJK}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")
# function words that carry no claim: an answer is not "supported" by a passage for sharing these
STOPWORDS = frozenset(
    """
    a an the and or but if of to in on at by for with from as is are was were be been being it its this that these
    those there here he she they we you i me my our your their his her them us not no do does did so than then too
    very can will would should could may might must has have had what which who whom whose when where why how all
    any each both few more most other some such only own same just also into about
    的 了 是 在 和 与 也 就 都 而 及 或 一 这 那 个 之 其 中
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; each CJK character is a token."""
    return _TOKEN.findall(text.lower())


class _Tokenizer:
    """The rouge-score tokenizer interface over `tokens`."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-example ROUGE-L F-measure (longest common subsequence of tokens), via rouge-score."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], tokenizer=_Tokenizer())
    return [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]


def _sacrebleu_tokenize(references: Sequence[str]) -> str:
    return "zh" if any(_HAS_CJK.search(r) for r in references) else "13a"


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, 0-100; "zh" tokenisation when the references hold CJK text)."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=_sacrebleu_tokenize(references))
    return metric.corpus_score(list(predictions), [list(references)]).score


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu, character 6-grams, beta 2; 0-100)."""
    from sacrebleu.metrics import CHRF

    return CHRF().corpus_score(list(predictions), [list(references)]).score


def sentence_chrf(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-example chrF (0-100), to rank the worst translations."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    return [metric.sentence_score(p, [r]).score for p, r in zip(predictions, references, strict=True)]


def normalize_answer(text: str) -> list[str]:
    """SQuAD's answer normalisation (lower case, no punctuation, no articles) as tokens (CJK per character)."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return tokens(_ARTICLES.sub(" ", text))


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1: harmonic mean of token precision and recall, counting repeated tokens."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def faithfulness(answer: str, passages: Sequence[str], threshold: float = 0.8) -> dict[str, float | None]:
    """How much of `answer` the retrieved `passages` support, lexically.

    `supported_tokens`: the share of the answer's content tokens (tokens above minus STOPWORDS) that occur in
    any passage. `supported_sentences`: the share of the answer's sentences at least `threshold` of whose content
    tokens occur in the passages. Both are None for an answer without content tokens. This catches answers that
    bring in names, numbers and words from nowhere; it cannot see a wrong claim made from the passages' words.
    """
    found = {t for p in passages for t in tokens(p)}
    content = [t for t in tokens(answer) if t not in STOPWORDS]
    if not content:
        return {"supported_tokens": None, "supported_sentences": None}
    scores = []
    for sentence in _SENTENCE.split(answer):
        words = [t for t in tokens(sentence) if t not in STOPWORDS]
        if words:
            scores.append(sum(w in found for w in words) / len(words) >= threshold)
    return {
        "supported_tokens": sum(t in found for t in content) / len(content),
        "supported_sentences": sum(scores) / len(scores),
    }


METRICS = ("rouge_l", "bleu", "chrf", "exact_match", "token_f1", "faithfulness")


def generation_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    metrics: Sequence[str],
    passages: Sequence[Sequence[str]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """The corpus figures of `metrics` (means over examples, BLEU/chrF corpus-level) and per-example scores
    (for ranking the worst examples). Faithfulness needs `passages`, one list per example."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    per_example: list[dict[str, float]] = [{} for _ in predictions]
    summary: dict[str, Any] = {"examples": len(predictions)}
    columns: dict[str, list[float]] = {}
    if "rouge_l" in metrics:
        columns["rouge_l"] = rouge_l(predictions, references)
    if "exact_match" in metrics:
        columns["exact_match"] = [exact_match(p, r) for p, r in zip(predictions, references, strict=True)]
    if "token_f1" in metrics:
        columns["token_f1"] = [token_f1(p, r) for p, r in zip(predictions, references, strict=True)]
    if "chrf" in metrics:
        columns["chrf"] = sentence_chrf(predictions, references)
        summary["chrf"] = round(chrf(predictions, references), 4)
    if "bleu" in metrics:
        summary["bleu"] = round(bleu(predictions, references), 4)
    if "faithfulness" in metrics:
        if passages is None:
            raise ValueError("faithfulness needs the retrieved passages of every example")
        checks = [faithfulness(p, ps) for p, ps in zip(predictions, passages, strict=True)]
        for name in ("supported_tokens", "supported_sentences"):
            values = [c[name] for c in checks if c[name] is not None]
            summary[f"faithfulness_{name}"] = round(sum(values) / len(values), 4) if values else None
        columns["faithfulness"] = [c["supported_tokens"] if c["supported_tokens"] is not None else 1.0 for c in checks]
    for name, values in columns.items():
        summary.setdefault(name, round(sum(values) / len(values), 4) if values else None)
        for row, value in zip(per_example, values, strict=True):
            row[name] = value
    return summary, per_example
