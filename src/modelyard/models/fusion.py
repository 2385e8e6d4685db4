"""Late fusion over two frozen encoders' features: one head per modality and one fusion head, trained together.

Each modality's features are standardised with the training set's mean and standard deviation (stored as buffers,
so the bundle carries them). The fusion head is either a linear layer over the concatenated standardised features
("concat") or a learned softmax-weighted average of the two modality heads' logits ("weighted_logits"). The
per-modality heads are trained in the same run, so one model answers "image only", "text only" and "fusion" on the
same rows.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Fusion = Literal["concat", "weighted_logits"]


class LateFusionHeads(nn.Module):
    def __init__(self, image_dim: int, text_dim: int, num_classes: int, fusion: Fusion, dropout: float) -> None:
        super().__init__()
        self.fusion = fusion
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_std", torch.ones(image_dim))
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_std", torch.ones(text_dim))
        self.drop = nn.Dropout(dropout)
        self.image_head = nn.Linear(image_dim, num_classes)
        self.text_head = nn.Linear(text_dim, num_classes)
        if fusion == "concat":
            self.fusion_head = nn.Linear(image_dim + text_dim, num_classes)
        else:
            self.mix = nn.Parameter(torch.zeros(2))  # softmax -> (image, text) weights, equal at the start

    def set_statistics(self, image: torch.Tensor, text: torch.Tensor) -> None:
        """Standardise with these training features' statistics (a floor on std keeps constant features finite)."""
        with torch.no_grad():
            self.image_mean.copy_(image.mean(0))
            self.image_std.copy_(image.std(0).clamp_min(1e-4))
            self.text_mean.copy_(text.mean(0))
            self.text_std.copy_(text.std(0).clamp_min(1e-4))

    def standardise(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (image - self.image_mean) / self.image_std, (text - self.text_mean) / self.text_std

    @torch.no_grad()
    def start_from(
        self,
        image: tuple[torch.Tensor, torch.Tensor],
        text: tuple[torch.Tensor, torch.Tensor],
        weights: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        """Set each modality head to a given (weight, bias) over standardised features, and the fusion to
        a x image logits + b x text logits, (a, b) = `weights` (concat: the scaled weights side by side;
        weighted_logits: the mix a / (a + b), b / (a + b), the same decisions)."""
        for head, (weight, bias) in ((self.image_head, image), (self.text_head, text)):
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        a, b = weights
        if self.fusion == "concat":
            self.fusion_head.weight.copy_(torch.cat([a * image[0], b * text[0]], dim=1))
            self.fusion_head.bias.copy_(a * image[1] + b * text[1])
        else:
            self.mix.copy_(torch.tensor([a, b]).clamp_min(1e-6).log())

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, image_dim), (B, text_dim) -> logits (B, num_classes) of each head."""
        x_image, x_text = self.standardise(image, text)
        x_image, x_text = self.drop(x_image), self.drop(x_text)  # (B, Di), (B, Dt)
        image_logits, text_logits = self.image_head(x_image), self.text_head(x_text)  # (B, K) each
        if self.fusion == "concat":
            fused = self.fusion_head(torch.cat([x_image, x_text], dim=1))  # (B, K)
        else:
            weights = self.mix.softmax(0)  # (2,)
            fused = weights[0] * image_logits + weights[1] * text_logits
        return {"image_only": image_logits, "text_only": text_logits, "fusion": fused}
