"""The report's answer-quality section for generators with `evaluation.metrics`: the scores of greedy answers to
the test prompts, and the worst answers side by side with their references."""

from __future__ import annotations

from typing import Any

from modelyard.evaluation.sections import ReportContext, Section, Table, Text, fmt, provides
from modelyard.generation.quality import score_generations

LABELS = {
    "rouge_l": "ROUGE-L F (0-1)",
    "bleu": "BLEU (0-100, corpus)",
    "chrf": "chrF (0-100, corpus)",
    "exact_match": "exact match (0-1)",
    "token_f1": "token F1 (0-1)",
    "faithfulness_supported_tokens": "answer content tokens found in the passages (0-1)",
    "faithfulness_supported_sentences": "answer sentences supported by the passages (0-1)",
}


def _applies(model: Any) -> bool:
    """Chat/generation bundles whose config asks for answer metrics (the generator first: other bundles may have
    no config to ask)."""
    return getattr(model.learner, "generator", None) is not None and bool(model.config.evaluation.metrics)


@provides("answer_quality", _applies)
def answer_quality_sections(context: ReportContext) -> list[Section]:
    test = list(context.prepared.splits.get("test") or [])
    if not test:
        return [Section("answer-quality", "Answer quality", [Text("no test examples to answer", "text", "warning")])]
    scored = score_generations(context.model.learner.generator, test, context.model.config.evaluation.metrics)
    rows = [[LABELS[name], fmt(scored[name])] for name in LABELS if scored.get(name) is not None]
    worst = [
        [w["prompt"], w["generated"], w["reference"], ", ".join(f"{k} {fmt(v)}" for k, v in w["scores"].items())]
        for w in scored["worst_examples"]
    ]
    blocks: list[Any] = [
        Table(["metric", "value"], rows, f"{scored['examples']} test examples, {scored['decoding']}"),
        Table(
            ["prompt", "generated", "reference", "scores"],
            worst,
            f"the worst answers by {scored['ranked_by']}, beside the reference answers",
        ),
    ]
    return [Section("answer-quality", "Answer quality", blocks, "generated answers scored against references")]
