"""Training-time augmentation on mel features, shared by the audio classifier and the speech recogniser.

`MelWarp` is vocal-tract-length perturbation (VTLP, Jaitly & Hinton 2013) done on the mel spectrogram: each
utterance's frequency axis is stretched or squeezed by a random factor, so one speaker sounds like speakers with
shorter or longer vocal tracts. Unlike speed perturbation it leaves the timing alone, and it costs one gather.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from modelyard.models.audio_features import FrontEndConfig, hz_to_mel, mel_to_hz

KNEE = 0.85  # share of the band below which the warp is a pure scaling (the rest maps linearly onto f_max)


class MelWarp(nn.Module):
    """Warp the frequency axis of (B, n_mels, T) features by a factor drawn uniformly in [1 - `spread`,
    1 + `spread`] per utterance, in training mode only; f_min and f_max stay where they are (piecewise-linear
    warp, as Kaldi's VTLN). Values between bands are interpolated linearly."""

    def __init__(self, cfg: FrontEndConfig, spread: float) -> None:
        super().__init__()
        self.spread = spread
        self.f_max = cfg.f_max
        edges = np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2)
        self.mel_first, self.mel_step = float(edges[1]), float(edges[1] - edges[0])
        centres = torch.tensor(mel_to_hz(edges[1:-1]), dtype=torch.float32)
        self.register_buffer("centres", centres, persistent=False)  # (F,) Hz

    def source_bands(self, factors: torch.Tensor) -> torch.Tensor:
        """(B, F) fractional band each output band reads from, for warp factors (B,) (>1: a shorter tract)."""
        f = self.centres[None]  # (1, F)
        alpha = factors[:, None]  # (B, 1)
        knee = KNEE * self.f_max * torch.clamp(alpha, max=1.0)  # (B, 1): below it, f reads f / alpha
        low = knee / alpha
        source = torch.where(f <= knee, f / alpha, low + (f - knee) * (self.f_max - low) / (self.f_max - knee))
        mel = 2595.0 * torch.log10(1.0 + source / 700.0)
        return ((mel - self.mel_first) / self.mel_step).clamp(0, f.shape[1] - 1)

    def warp(self, x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        # x (B, F, T), factors (B,)
        b, f, t = x.shape
        index = self.source_bands(factors.to(x.device))  # (B, F)
        lower = index.floor().long().clamp(max=f - 1)
        upper = (lower + 1).clamp(max=f - 1)
        weight = (index - lower)[:, :, None]  # (B, F, 1)
        below = x.gather(1, lower[:, :, None].expand(b, f, t))
        above = x.gather(1, upper[:, :, None].expand(b, f, t))
        return below + (above - below) * weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spread == 0:
            return x
        factors = 1.0 + (torch.rand(x.shape[0], device=x.device) * 2 - 1) * self.spread
        return self.warp(x, factors)
