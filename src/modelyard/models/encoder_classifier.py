"""A text encoder (pretrained Hugging Face model or our scratch encoder) with a pooled classification head."""

from __future__ import annotations

import torch
from torch import nn


class EncoderClassifier(nn.Module):
    """Mean-pools the encoder's token states (how sentence encoders such as MiniLM were trained), then a linear head."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_labels)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token states (B, T, C) from any encoder: Hugging Face models return them as `last_hidden_state`."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return getattr(states, "last_hidden_state", states)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.hidden(input_ids, attention_mask)  # (B, T, C)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, C)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))  # (B, num_labels)
