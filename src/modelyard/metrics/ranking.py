"""Top-k ranking metrics for recommenders: recall@k, ndcg@k, hit_rate@k and catalogue coverage@k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KS = (5, 10, 20)


def top_k(scores: np.ndarray, exclude: Sequence[Sequence[int]], k: int) -> np.ndarray:
    """Indices of the k best items per row, best first, never an excluded one; `scores`: (U, I) -> (U, k).

    A row with fewer than k items left (a small catalogue, a user who has seen most of it) ends in -1s."""
    blocked = np.zeros(scores.shape, dtype=bool)
    for row, items in enumerate(exclude):
        blocked[row, np.asarray(items, dtype=np.int64)] = True
    scores = np.where(blocked, -np.inf, scores.astype(np.float64))
    width = min(k, scores.shape[1])
    part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top[np.take_along_axis(blocked, top, axis=1)] = -1  # excluded items sort last, so the -1s form each row's tail
    return np.pad(top, ((0, 0), (0, k - width)), constant_values=-1)


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
    """Metrics of ranked lists `top` (U, >= max(ks); -1: no item) against each user's relevant items (-1: unknown
    item).

    recall@k = hits / relevant items; ndcg@k = DCG / ideal DCG with binary gains; hit_rate@k = share of users
    with a hit; coverage@k = share of the catalogue appearing in anybody's top k.
    """
    if len(relevant) == 0:
        return {}
    out: dict[str, Any] = {}
    for k in ks:
        out.update({name: float(np.mean(values)) for name, values in per_user(top, relevant, k).items()})
        listed = np.unique(top[:, :k])
        out[f"coverage@{k}"] = float(np.count_nonzero(listed >= 0) / num_items) if num_items else 0.0
    out["users"] = len(relevant)
    return out
