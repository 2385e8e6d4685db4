"""A text encoder (pretrained Hugging Face model or our scratch encoder) with a pooled classification head."""

from __future__ import annotations

import torch
from torch import nn


class EncoderClassifier(nn.Module):
    """Mean-pools the encoder's token states (how sentence encoders such as MiniLM were trained), then a linear head.

    BERT-style encoders also carry a pooler (a dense layer over [CLS]) that mean-pooling never uses: it is dropped,
    so it is neither trained nor saved, and distributed training (DDP), which waits for a gradient of every
    trainable parameter, does not fail on it. Hugging Face encoders skip a pooler that is None."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if isinstance(getattr(encoder, "pooler", None), nn.Module):
            encoder.pooler = None
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_labels)
        self.register_load_state_dict_pre_hook(_skip_pooler_weights)

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


def _skip_pooler_weights(module: nn.Module, state_dict: dict, prefix: str, *_: object) -> None:
    """Bundles saved before the pooler was dropped still load: their unused pooler weights are left out."""
    for key in [k for k in state_dict if k.startswith(f"{prefix}encoder.pooler.")]:
        del state_dict[key]


class LogitsAndEmbedding(nn.Module):
    """The exported graph: both outputs, so the ONNX learner serves `predict` and `embed` alike."""

    def __init__(self, classifier: EncoderClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedding = self.classifier.embed(input_ids, attention_mask)  # (B, C)
        return self.classifier.head(embedding), embedding  # (B, num_labels), (B, C)
