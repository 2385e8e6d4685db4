"""Top-k ranking metrics for recommenders: recall@k, ndcg@k, hit_rate@k and catalogue coverage@k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KS = (5, 10, 20)


def top_k(scores: np.ndarray, exclude: Sequence[Sequence[int]], k: int) -> np.ndarray:
    """Indices of the k best items per row, best first, never an excluded one; `scores`: (U, I) -> (U, k)."""
    scores = scores.astype(np.float64, copy=True)
    for row, items in enumerate(exclude):
        if len(items):
            scores[row, np.asarray(items, dtype=np.int64)] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def per_user(top: np.ndarray, relevant: Sequence[Sequence[int]], k: int) -> dict[str, np.ndarray]:
    """recall@k, ndcg@k and hit_rate@k of every user, (U,) each: their means are the metrics, and the report
    resamples users to put intervals on them."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall, ndcg, hit = [], [], []
    for row, items in zip(top[:, :k], relevant, strict=True):
        wanted = {item for item in items if item >= 0}
        gains = np.array([item in wanted for item in row], dtype=np.float64)
        hits = gains.sum()
        recall.append(hits / len(items) if len(items) else 0.0)
        ideal = discounts[: min(len(items), k)].sum()
        ndcg.append(float(gains @ discounts[: len(row)]) / ideal if ideal else 0.0)
        hit.append(float(hits > 0))
    return {f"recall@{k}": np.array(recall), f"ndcg@{k}": np.array(ndcg), f"hit_rate@{k}": np.array(hit)}


def ranking_metrics(
    top: np.ndarray, relevant: Sequence[Sequence[int]], num_items: int, ks: Sequence[int] = KS
) -> dict[str, Any]:
    """Metrics of ranked lists `top` (U, >= max(ks)) against each user's relevant items (-1: unknown item).

    recall@k = hits / relevant items; ndcg@k = DCG / ideal DCG with binary gains; hit_rate@k = share of users
    with a hit; coverage@k = share of the catalogue appearing in anybody's top k.
    """
    if len(relevant) == 0:
        return {}
    out: dict[str, Any] = {}
    for k in ks:
        out.update({name: float(np.mean(values)) for name, values in per_user(top, relevant, k).items()})
        out[f"coverage@{k}"] = float(len(np.unique(top[:, :k])) / num_items) if num_items else 0.0
    out["users"] = len(relevant)
    return out
