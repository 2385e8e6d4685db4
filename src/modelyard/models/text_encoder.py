"""A small Transformer encoder trained from scratch, for text a pretrained tokenizer does not cover."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class TextEncoderConfig:
    vocab_size: int
    max_length: int = 128
    hidden_size: int = 256
    layers: int = 3
    heads: int = 4
    dropout: float = 0.1
    pad_id: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class TextEncoder(nn.Module):
    """Token + learned position embeddings, then pre-norm Transformer encoder layers."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_id)
        self.positions = nn.Embedding(cfg.max_length, cfg.hidden_size)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden_size,
            cfg.heads,
            4 * cfg.hidden_size,
            cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden_size)

    @property
    def hidden_size(self) -> int:
        return self.cfg.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        _, t = input_ids.shape  # (B, T)
        pos = torch.arange(t, device=input_ids.device)
        x = self.drop(self.tokens(input_ids) + self.positions(pos))  # (B, T, C)
        x = self.layers(x, src_key_padding_mask=attention_mask == 0)  # (B, T, C)
        return self.norm(x)
