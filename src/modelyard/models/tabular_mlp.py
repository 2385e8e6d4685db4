"""An MLP over a table: embeddings for categorical codes, standardised numbers with missing indicators, in one
readable file (nanoGPT style).

It reads the same float matrix as the GBDT (categorical codes as floats, NaN for missing), so one ONNX graph
takes the encoder's output directly and the server's preprocessing is shared by every tabular model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class TabularMLPConfig:
    cardinalities: list[int] = field(default_factory=list)  # per input column: 0 numeric, else codes (+1 missing)
    outputs: int = 1
    hidden_size: int = 128
    layers: int = 2
    dropout: float = 0.1
    norm: str = "batch"  # batch | layer (DP-SGD: layer norm keeps each example's output its own)

    def as_dict(self) -> dict:
        return asdict(self)


def embedding_dim(cardinality: int) -> int:
    """fastai's rule of thumb, capped: 1.6 * n^0.56."""
    return int(min(16, round(1.6 * (cardinality + 1) ** 0.56)))


class TabularMLP(nn.Module):
    def __init__(self, config: TabularMLPConfig) -> None:
        super().__init__()
        self.config = config
        cards = config.cardinalities
        numeric = [i for i, c in enumerate(cards) if c == 0]
        categorical = [i for i, c in enumerate(cards) if c > 0]
        self.register_buffer("numeric_index", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("categorical_index", torch.tensor(categorical, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(len(numeric)))  # set from the training data before training
        self.register_buffer("scale", torch.ones(len(numeric)))
        self.embeddings = nn.ModuleList(nn.Embedding(cards[i] + 1, embedding_dim(cards[i])) for i in categorical)
        width = 2 * len(numeric) + sum(e.embedding_dim for e in self.embeddings)
        blocks: list[nn.Module] = []
        for _ in range(config.layers):
            norm = nn.BatchNorm1d if config.norm == "batch" else nn.LayerNorm
            blocks += [nn.Linear(width, config.hidden_size), norm(config.hidden_size), nn.SiLU()]
            blocks.append(nn.Dropout(config.dropout))
            width = config.hidden_size
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, config.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, F) encoded table; categorical columns hold codes 0..K-1, NaN = missing
        num = x.index_select(1, self.numeric_index)  # (B, Fn)
        missing = torch.isnan(num)
        num = torch.where(missing, torch.zeros_like(num), (num - self.mean) / self.scale).clamp(-10, 10)
        parts = [num, missing.float()]
        cat = x.index_select(1, self.categorical_index)  # (B, Fc)
        cat = torch.where(torch.isnan(cat), torch.zeros_like(cat), cat + 1).long()  # 0 = missing
        parts += [emb(cat[:, j]) for j, emb in enumerate(self.embeddings)]  # (B, E_j) each
        return self.head(self.body(torch.cat(parts, dim=1)))  # (B, outputs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
