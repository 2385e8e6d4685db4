"""Retrieval metrics over ranked result lists: recall@k and mean reciprocal rank (MRR).

A query's results are any hashable keys (chunk ids, (file, section) pairs, paragraph ids), best first, and its
relevant keys a collection. Repeated keys (two chunks of one gold paragraph) count once.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Any

KS = (1, 5, 10)


def recall_at_k(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int) -> float:
    """Mean over queries of |relevant keys in the top k| / |relevant keys|; with one relevant key per query it is
    the share of queries answered within the top k (DPR's "top-k accuracy")."""
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} result lists for {len(relevant)} queries")
    scores = [len(set(r[:k]) & set(g)) / len(set(g)) for r, g in zip(ranked, relevant, strict=True) if g]
    return sum(scores) / len(scores) if scores else 0.0


def mrr(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int | None = None) -> float:
    """Mean of 1 / rank of the first relevant result (0 when none is in the top k, or at all when k is None)."""
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} result lists for {len(relevant)} queries")
    scores = []
    for results, gold in zip(ranked, relevant, strict=True):
        if not gold:
            continue
        wanted = set(gold)
        first = next((rank for rank, key in enumerate(results[:k], start=1) if key in wanted), None)
        scores.append(1.0 / first if first else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def retrieval_metrics(
    ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], ks: Sequence[int] = KS
) -> dict[str, Any]:
    """{"recall_at_k": {"1": .., "5": .., "10": ..}, "mrr": .., "queries": n}; queries without a relevant key are
    left out of every figure."""
    return {
        "recall_at_k": {str(k): round(recall_at_k(ranked, relevant, k), 4) for k in ks},
        "mrr": round(mrr(ranked, relevant), 4),
        "queries": sum(1 for g in relevant if g),
    }
