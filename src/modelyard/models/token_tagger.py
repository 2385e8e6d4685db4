"""A text encoder with a per-token classification head: one tag score vector for every sub-token."""

from __future__ import annotations

import torch
from torch import nn


class TokenTagger(nn.Module):
    """Encoder states (B, T, C) -> dropout -> linear (B, T, num_tags). The BERT pooler is never used for tagging:
    it is dropped, so it is neither trained nor saved (and DDP does not wait for its gradient)."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        if isinstance(getattr(encoder, "pooler", None), nn.Module):
            encoder.pooler = None
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_tags)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        states = getattr(states, "last_hidden_state", states)  # (B, T, C)
        return self.head(self.dropout(states))  # (B, T, num_tags)
