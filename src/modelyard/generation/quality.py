"""Answer quality of a chat generator: answer every example's prompt, score the answers against the reference
answers (`modelyard.metrics.generation`), and keep the worst examples for the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelyard.generation.generator import TextGenerator
from modelyard.metrics.generation import generation_metrics
from modelyard.metrics.retrieval import retrieval_metrics

WORST = 5
BATCH = 8
RANK_BY = ("token_f1", "rouge_l", "chrf", "exact_match", "faithfulness")  # the first one computed ranks the worst


def split_example(item: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """(the conversation before the last answer, that answer): the prompt and its reference."""
    messages = item["messages"]
    return messages[:-1], messages[-1]["content"]


def score_generations(
    generator: TextGenerator, items: Sequence[dict[str, Any]], metrics: Sequence[str], worst: int = WORST
) -> dict[str, Any]:
    """The `metrics` of greedy answers to `items` (chat examples ending in the reference answer; `passages`
    for faithfulness; `retrieved_ids` and `relevant_ids` for recall@k and MRR), and the `worst` examples side by
    side with their references."""
    prompts, references = zip(*(split_example(item) for item in items), strict=True)
    answers: list[str] = []
    for start in range(0, len(prompts), BATCH):
        done = generator.complete(list(prompts[start : start + BATCH]), temperature=0)
        answers += [d["text"].strip() for d in done]
    passages = [item.get("passages", []) for item in items] if "faithfulness" in metrics else None
    summary, rows = generation_metrics(answers, list(references), list(metrics), passages)
    if {"recall_at_k", "mrr"} & set(metrics):  # the retriever's ranking, as recorded in each example
        ranked = retrieval_metrics([i["retrieved_ids"] for i in items], [i["relevant_ids"] for i in items])
        summary.update({k: v for k, v in ranked.items() if k in metrics or k == "queries"})
    rank = next((m for m in RANK_BY if rows and m in rows[0]), None)
    order = sorted(range(len(rows)), key=lambda i: rows[i][rank]) if rank else []
    summary["worst_examples"] = [
        {
            "prompt": prompts[i][-1]["content"] if prompts[i] else "",
            "generated": answers[i],
            "reference": references[i],
            "scores": {k: round(v, 4) for k, v in rows[i].items()},
        }
        for i in order[:worst]
    ]
    summary["ranked_by"] = rank
    summary["decoding"] = "greedy (temperature 0)"
    return summary
