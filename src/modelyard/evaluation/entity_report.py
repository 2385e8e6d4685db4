"""Report sections for token classifiers: entity F1 per type beside the baseline, and the test sentences the
model gets most wrong with their true and predicted spans."""

from __future__ import annotations

from typing import Any

from modelyard.data.entities import split_words, tag_spans, word_tags
from modelyard.evaluation.sections import ReportContext, Section, Table, Text, fmt, provides

WORST = 12


def _spans(text: str, entities: list[dict[str, Any]]) -> set[tuple[int, int, str]]:
    """Gold spans as the model is scored on them: widened to whole words, as their BIO word tags say."""
    words = split_words(text)
    return {(s["start"], s["end"], s["label"]) for s in tag_spans(text, words, word_tags(text, entities, words)[0])}


def _shown(text: str, spans: set[tuple[int, int, str]]) -> str:
    return "; ".join(f"{label}: {text[start:end]}" for start, end, label in sorted(spans)) or "(none)"


@provides("entities", lambda model: hasattr(model.learner, "word_predictions"), exclusive=True)
def entity_sections(context: ReportContext) -> list[Section]:
    metrics = context.metrics
    test = metrics.get("test", {}).get("per_type", {})
    baseline = metrics.get("baselines", {}).get("most_frequent_tag", {}).get("test", {}).get("per_type", {})
    rows = [
        [
            kind,
            fmt(r["precision"]),
            fmt(r["recall"]),
            fmt(r["f1"]),
            fmt(baseline.get(kind, {}).get("f1")),
            fmt(r["support"]),
        ]
        for kind, r in test.items()
    ]
    blocks: list[Any] = [
        Table(
            ["entity type", "precision", "recall", "F1", "baseline F1", "test entities"],
            rows,
            "entity-level (seqeval): type and both boundaries must match; baseline: most frequent tag per word",
        )
    ]
    split = context.prepared.splits.get("test") if context.prepared is not None else None
    sections = [Section("entities", "Entities per type", blocks, "how well each kind of entity is found")]
    if split is None or not len(split):
        return sections
    texts = split["text"].tolist()
    context.sample_inputs = texts[:1]
    answers = context.model.learner.predict(texts)
    scored = []
    for text, entities, answer in zip(texts, split["entities"], answers, strict=True):
        gold = _spans(text, entities)
        predicted = {(s["start"], s["end"], s["label"]) for s in answer["entities"]}
        errors = len(gold ^ predicted)
        if errors:
            scored.append((errors, text, gold, predicted))
    scored.sort(key=lambda row: -row[0])
    worst = [[text, _shown(text, gold), _shown(text, pred), errors] for errors, text, gold, pred in scored[:WORST]]
    rows_wrong = f"{len(scored)} of {len(texts)} test sentences have at least one missed or wrong entity"
    sections.append(
        Section(
            "worst-sentences",
            "Sentences with the most entity errors",
            [Text(rows_wrong, tone="note"), Table(["sentence", "true", "predicted", "errors"], worst, "test split")]
            if worst
            else [Text("every test sentence is tagged exactly right", tone="note")],
            "missed, spurious and mis-typed spans (errors = spans in one list but not the other)",
        )
    )
    return sections
