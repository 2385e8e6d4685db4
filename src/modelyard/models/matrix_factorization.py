"""Matrix factorisation as a two-tower model over ids, trained on implicit feedback (nanoGPT style, one file).

score(u, i) = <user_u, item_i> + bias_i. Trained with BPR (a positive should outscore sampled negatives) or a
sampled softmax (the positive among itself and the sampled negatives). Item embeddings double as the item-item
similarity behind "more like this".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MFConfig:
    users: int
    items: int
    dim: int = 64
    loss: Literal["bpr", "sampled_softmax"] = "bpr"
    l2: float = 1e-3  # penalty on the embeddings a batch touches (weight decay for sparse rows)

    def as_dict(self) -> dict:
        return asdict(self)


class MatrixFactorization(nn.Module):
    def __init__(self, config: MFConfig) -> None:
        super().__init__()
        self.config = config
        self.user = nn.Embedding(config.users, config.dim)
        self.item = nn.Embedding(config.items, config.dim)
        self.item_bias = nn.Embedding(config.items, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # users: (B,), items: (B, K) -> (B, K)
        u = self.user(users)  # (B, D)
        v = self.item(items)  # (B, K, D)
        return torch.einsum("bd,bkd->bk", u, v) + self.item_bias(items).squeeze(-1)

    def forward(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        # users, positives: (B,), negatives: (B, N) -> scalar loss
        items = torch.cat([positives[:, None], negatives], dim=1)  # (B, 1 + N)
        scores = self.score(users, items)  # (B, 1 + N)
        if self.config.loss == "bpr":
            loss = -F.logsigmoid(scores[:, :1] - scores[:, 1:]).mean()
        else:
            loss = F.cross_entropy(scores, torch.zeros(len(users), dtype=torch.long, device=scores.device))
        penalty = self.user(users).pow(2).sum(-1).mean() + self.item(items).pow(2).sum(-1).mean()
        return loss + self.config.l2 * penalty

    def all_scores(self, users: torch.Tensor) -> torch.Tensor:
        # users: (B,) -> (B, I): every item's score for each user
        return self.user(users) @ self.item.weight.T + self.item_bias.weight.T

    def similar(self, items: torch.Tensor) -> torch.Tensor:
        # items: (B,) -> (B, I): cosine similarity of each item's embedding to every item's
        table = F.normalize(self.item.weight, dim=-1)  # (I, D)
        return table[items] @ table.T
