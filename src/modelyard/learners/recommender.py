"""The matrix-factorisation recommender's learner: id vocabularies, negative sampling, ranking, cold start.

Ids are kept as strings. Rankings never contain an item the user already interacted with, at any rating; users
the model has no embedding for (never seen, or seen without a positive interaction) get the most popular items,
and the answer says so (`cold_start: true`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from safetensors.torch import load_file, save_file

from modelyard.data.interactions import Interactions
from modelyard.errors import DataError
from modelyard.fsutil import atomic_path, atomic_write_json
from modelyard.metrics import ranking
from modelyard.models.matrix_factorization import MatrixFactorization, MFConfig
from modelyard.protocols import validate_input
from modelyard.training.checkpoint import save_weights

SCORE_CHUNK = 1024  # users scored at once: (chunk, items) floats
MAX_K = 1000
DEFAULTS = {"epochs": 20, "batch_size": 512, "learning_rate": 5e-3, "scheduler": "cosine"}


class RecommendInput(BaseModel):
    """Recommendations for a user, or "more like this" for an item; exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    user: str | int | None = Field(None, description="user id; unknown users get popular items (cold start)")
    item: str | int | None = Field(None, description="item id: items most similar to it")
    k: int = Field(10, ge=1, le=MAX_K, description="how many items to return")

    @field_validator("user", "item", mode="before")
    @classmethod
    def _an_id(cls, value: Any) -> Any:
        """JSON's true would pass as the integer 1 and blank text as a cold-start user named ""."""
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()} is not an id: send text or a whole number")
        if isinstance(value, str) and not value.strip():
            raise ValueError("an id cannot be empty")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> RecommendInput:
        if (self.user is None) == (self.item is None):
            raise ValueError("give exactly one of 'user' (recommendations) or 'item' (similar items)")
        return self


Scorer = Callable[[np.ndarray], np.ndarray]  # user indices (-1: unknown) -> (U, items) scores


def rank_split(
    split: Interactions, users: dict[str, int], items: dict[str, int], scorer: Scorer
) -> tuple[np.ndarray, list[list[int]]]:
    """Every target user's top items (U, max(KS)), the user's history excluded (-1 past the last item left), and
    their relevant items."""
    targets = split.targets.groupby("user")["item"].agg(list)
    history = split.history[split.history["user"].isin(targets.index)].groupby("user")["item"].agg(list)
    rows = np.array([users.get(u, -1) for u in targets.index])
    relevant = [[items.get(i, -1) for i in found] for found in targets]
    exclude = [[items[i] for i in history.get(u, []) if i in items] for u in targets.index]
    tops = [
        ranking.top_k(scorer(rows[s : s + SCORE_CHUNK]), exclude[s : s + SCORE_CHUNK], max(ranking.KS))
        for s in range(0, len(rows), SCORE_CHUNK)
    ]
    return np.concatenate(tops), relevant


def score_split(split: Interactions, users: dict[str, int], items: dict[str, int], scorer: Scorer) -> dict[str, Any]:
    """Rank every item for each target user, excluding the user's history, and score against the targets."""
    if len(split.targets) == 0:
        return {}
    top, relevant = rank_split(split, users, items, scorer)
    return ranking.ranking_metrics(top, relevant, len(items))


def item_counts(targets: pd.DataFrame, items: dict[str, int]) -> np.ndarray:
    counts = np.zeros(len(items), dtype=np.float32)
    found = targets["item"].map(items).dropna().astype(np.int64)
    np.add.at(counts, found.to_numpy(), 1.0)
    return counts


def popularity_baseline(splits: dict[str, Interactions]) -> dict[str, Any]:
    """Every user gets the items with the most positive training interactions."""
    items = {i: n for n, i in enumerate(sorted(splits["train"].targets["item"].unique()))}
    counts = item_counts(splits["train"].targets, items)
    scorer: Scorer = lambda rows: np.broadcast_to(counts, (len(rows), len(counts)))  # noqa: E731
    return {name: score_split(splits[name], {}, items, scorer) for name in ("validation", "test") if len(splits[name])}


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        self.users = torch.tensor(users, dtype=torch.long)
        self.items = torch.tensor(items, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.users[i], self.items[i]


class RecommenderLearner:
    """MF module + id vocabularies + popularity + what each user has seen (for serving).

    `cold_users` interacted without a positive: no embedding (so cold start), but what they have seen is kept, after
    `users` in the seen arrays, so it is never recommended to them."""

    backbone = "mf"

    def __init__(
        self,
        module: MatrixFactorization,
        users: list[str],
        items: list[str],
        negatives: int,
        popularity: np.ndarray,
        seen_indptr: np.ndarray,
        seen_indices: np.ndarray,
        cold_users: list[str],
    ) -> None:
        self.module = module
        self.users, self.items, self.cold_users = users, items, cold_users
        self.user_index = {u: n for n, u in enumerate(users)}
        self.seen_index = {u: n for n, u in enumerate(users + cold_users)}
        self.item_index = {i: n for n, i in enumerate(items)}
        self.negatives = negatives
        self.popularity = popularity
        self.seen_indptr, self.seen_indices = seen_indptr, seen_indices

    @classmethod
    def build(cls, options: Any, splits: dict[str, Interactions]) -> RecommenderLearner:
        train = splits["train"].targets
        users = sorted(train["user"].unique())
        items = sorted(train["item"].unique())
        item_index = {i: n for n, i in enumerate(items)}
        seen = pd.concat([part for s in splits.values() for part in (s.targets, s.history)])
        cold = sorted(set(seen["user"].unique()) - set(users))
        seen_rows = {u: n for n, u in enumerate(users + cold)}
        seen = seen.assign(u=seen["user"].map(seen_rows), i=seen["item"].map(item_index))
        seen = seen.dropna(subset=["u", "i"]).drop_duplicates(["u", "i"]).sort_values(["u", "i"])
        indptr = np.searchsorted(seen["u"].to_numpy(), np.arange(len(seen_rows) + 1)).astype(np.int64)
        config = MFConfig(users=len(users), items=len(items), dim=options.dim, loss=options.loss, l2=options.l2)
        return cls(
            MatrixFactorization(config),
            users,
            items,
            options.negatives,
            item_counts(train, item_index),
            indptr,
            seen["i"].to_numpy(dtype=np.int64),
            cold,
        )

    @classmethod
    def load(cls, directory: Path) -> RecommenderLearner:
        spec = json.loads((directory / "recommender.json").read_text(encoding="utf-8"))
        module = MatrixFactorization(MFConfig(**spec["model"]))
        module.load_state_dict(load_file(str(directory / "model.safetensors")))
        module.eval()
        extra = load_file(str(directory / "interactions.safetensors"))
        return cls(
            module,
            spec["users"],
            spec["items"],
            spec["negatives"],
            extra["popularity"].numpy(),
            extra["seen_indptr"].numpy(),
            extra["seen_indices"].numpy(),
            spec.get("cold_users", []),  # bundles before it kept no seen items for users without a positive
        )

    def train_defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def dataset(self, data: Interactions, training: bool) -> PairDataset:
        pairs = data.targets.assign(
            u=data.targets["user"].map(self.user_index), i=data.targets["item"].map(self.item_index)
        ).dropna(subset=["u", "i"])
        return PairDataset(pairs["u"].to_numpy(dtype=np.int64), pairs["i"].to_numpy(dtype=np.int64))

    def collate(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        users = torch.stack([u for u, _ in batch])
        return {
            "users": users,
            "positives": torch.stack([i for _, i in batch]),
            "negatives": torch.randint(len(self.items), (len(batch), self.negatives)),
        }

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(batch["users"], batch["positives"], batch["negatives"])

    @torch.inference_mode()
    def scores(self, rows: np.ndarray) -> np.ndarray:
        """(U, items) scores; unknown users (-1) get popularity."""
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        device = module.item.weight.device
        known = rows >= 0
        out = np.broadcast_to(self.popularity, (len(rows), len(self.items))).astype(np.float32)
        if known.any():
            out[known] = module.all_scores(torch.from_numpy(rows[known]).to(device)).float().cpu().numpy()
        module.train(was_training)
        return out

    def seen_pairs(self) -> pd.DataFrame:
        """Every (user, item) the model knows of, as string ids."""
        rows = np.repeat(np.arange(len(self.seen_index)), np.diff(self.seen_indptr))
        return pd.DataFrame(
            {
                "user": np.asarray(self.users + self.cold_users, dtype=object)[rows],
                "item": np.asarray(self.items, dtype=object)[self.seen_indices],
            }
        )

    def _with_history(self, data: Interactions) -> Interactions:
        """Without history (a new file) what the model knows is excluded from the rankings, bar the targets."""
        if data.history is not None:
            return data
        known = self.seen_pairs().merge(data.targets, on=["user", "item"], how="left", indicator=True)
        return Interactions(data.targets, known[known["_merge"] == "left_only"][["user", "item"]])

    def evaluate(self, data: Interactions) -> dict[str, Any]:
        """Ranking metrics of the split's target users."""
        return score_split(self._with_history(data), self.user_index, self.item_index, self.scores)

    def ranked(self, data: Interactions) -> tuple[np.ndarray, list[list[int]]]:
        """Per-user rankings and relevant items of a split (what `evaluate` scores), for per-user analysis."""
        if len(data.targets) == 0:
            return np.zeros((0, max(ranking.KS)), dtype=np.int64), []
        return rank_split(self._with_history(data), self.user_index, self.item_index, self.scores)

    def parse_input(self, item: Any) -> RecommendInput:
        """Validate one request; a DataError names the problem (HTTP 422, CLI exit 1)."""
        request = validate_input(RecommendInput, item)
        if request.item is not None and str(request.item).strip() not in self.item_index:
            raise DataError(f"unknown item {request.item!r}: 'more like this' needs an item seen in training")
        return request

    def seen_items(self, user: str) -> np.ndarray:
        """Indices of the items a user interacted with, at any rating (none for a user never seen)."""
        row = self.seen_index.get(user)
        if row is None:
            return np.zeros(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    def _answer(self, ranked: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        return [{"item": self.items[j], "score": float(scores[j])} for j in ranked]

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """Ranked items with scores, never one the user already has; `k` comes from each input."""
        answers = []
        for request in (self.parse_input(x) for x in inputs):
            if request.item is not None:
                key = str(request.item).strip()
                row = self.item_index[key]
                with torch.inference_mode():
                    sims = self.module.similar(torch.tensor([row])).float().cpu().numpy()
                ranked = ranking.top_k(sims, [[row]], request.k)[0]
                ranked = ranked[ranked >= 0]  # fewer than k when the catalogue is smaller: never the item itself
                answers.append({"item": key, "items": self._answer(ranked, sims[0])})
                continue
            user = str(request.user).strip()
            row = self.user_index.get(user, -1)
            seen = self.seen_items(user)
            scores = self.scores(np.array([row]))
            ranked = ranking.top_k(scores, [seen], request.k)[0]
            ranked = ranked[ranked >= 0]  # fewer than k when the user has seen nearly everything
            share = scores[0] / max(float(self.popularity.sum()), 1.0) if row < 0 else scores[0]
            answers.append({"user": user, "items": self._answer(ranked, share), "cold_start": row < 0})
        return answers

    def save(self, directory: Path) -> dict[str, Any]:
        module = getattr(self.module, "module", self.module)
        save_weights(module, directory / "model.safetensors")
        extra = {
            "popularity": torch.tensor(self.popularity),
            "seen_indptr": torch.tensor(self.seen_indptr),
            "seen_indices": torch.tensor(self.seen_indices),
        }
        with atomic_path(directory / "interactions.safetensors") as tmp:
            save_file(extra, str(tmp))
        atomic_write_json(
            directory / "recommender.json",
            {
                "model": module.config.as_dict(),
                "users": self.users,
                "items": self.items,
                "negatives": self.negatives,
                "cold_users": self.cold_users,
            },
        )
        return {"users": len(self.users), "items": len(self.items)}
