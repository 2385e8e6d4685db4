"""A small speech recogniser trained here: log-mel front end -> vocal-tract-length perturbation (training only) ->
per-utterance normalisation -> SpecAugment (training only) -> optionally the first cepstral coefficients (DCT of the
bands) -> 4x convolutional subsampling -> bidirectional LSTM -> per-frame character logits for CTC.

With `encoder` set, a frozen pretrained Whisper encoder replaces the front end and the convolutions: a learned
mix of its layers' outputs (as in SUPERB's downstream models), random time masks (training only), two 20 ms
positions stacked into one 40 ms frame and projected -> the same bidirectional LSTM and CTC head. Only the mix,
the projection, the LSTM and the head are trained.

One module from waveform to logits, so the exported ONNX graph takes 16 kHz samples and nothing has to be
re-implemented beside it. Padding is zeros after the valid samples; `lengths` say how many are real.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from modelyard.models.audio_augment import MelWarp
from modelyard.models.audio_features import FrontEndConfig, dct_matrix, frontend
from modelyard.models.whisper_encoder import WhisperHiddenStates


@dataclass
class CTCConfig:
    vocab_size: int  # characters + the blank (index 0)
    n_mels: int = 64
    conv_channels: int = 128
    hidden_size: int = 128  # per direction
    layers: int = 2
    dropout: float = 0.15
    freq_masks: int = 2
    freq_mask_width: int = 10
    time_masks: int = 2
    time_mask_share: float = 0.05  # each time mask covers at most this share of the frames
    vtlp: float = 0.0  # training only: each utterance's frequency axis warped by a factor in [1 +- vtlp] (MelWarp)
    cepstra: int | None = None  # keep this many DCT coefficients of the normalised bands; None: the bands themselves
    subsampling: str = "conv1d"  # conv1d: bands as channels; conv2d: 3x3 filters over bands and time
    conv2d_channels: int = 32
    frontend: dict[str, Any] = field(default_factory=dict)
    # a frozen pretrained Whisper encoder as the front end: {"name", "shape" (encoder_shape), "max_hz"}; None: log-mel
    encoder: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def frontend_config(self) -> FrontEndConfig:
        return FrontEndConfig(**{**self.frontend, "kind": "logmel", "n_mels": self.n_mels})


def subsampled(lengths: torch.Tensor) -> torch.Tensor:
    """Frames left after the two stride-2 convolutions (kernel 5 and padding 2, or 3 and 1: the same lengths)."""
    for _ in range(2):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


class Conv2dSubsampling(nn.Module):
    """(B, bands, T) -> (B, out, T/4): two stride-2 3x3 convolutions over bands and time, as ESPnet's and
    DeepSpeech 2's front ends, so a formant a few bands higher (a shorter vocal tract) meets the same filters; then
    the remaining bands are flattened and projected."""

    def __init__(self, bands: int, channels: int, out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.project = nn.Linear(channels * int(subsampled(torch.tensor(bands))), out)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.conv(feats.unsqueeze(1))  # (B, channels, bands / 4, T / 4)
        b, c, f, t = x.shape
        return self.project(x.permute(0, 3, 1, 2).reshape(b, t, c * f)).transpose(1, 2)


class CTCRecognizer(nn.Module):
    def __init__(self, cfg: CTCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        if cfg.encoder is not None:
            shape = cfg.encoder["shape"]
            self.encoder = WhisperHiddenStates(shape, cfg.encoder["max_hz"])
            self.layer_weights = nn.Parameter(torch.zeros(shape["encoder_layers"]))
            width = 2 * shape["d_model"]  # two positions stacked
            self.project = nn.Sequential(nn.LayerNorm(width), nn.Dropout(cfg.dropout), nn.Linear(width, c))
        else:
            self.frontend_cfg = cfg.frontend_config()
            self.features = frontend(self.frontend_cfg)
            self.warp = MelWarp(self.frontend_cfg, cfg.vtlp)  # identity unless training with vtlp > 0
            if cfg.cepstra is not None:
                self.register_buffer("dct", dct_matrix(cfg.n_mels, cfg.cepstra).T.contiguous(), persistent=False)
            bands = cfg.cepstra or cfg.n_mels
            if cfg.subsampling == "conv2d":
                self.subsample = Conv2dSubsampling(bands, cfg.conv2d_channels, c)
            else:
                self.subsample = nn.Sequential(
                    nn.Conv1d(bands, c, 5, stride=2, padding=2),
                    nn.GELU(),
                    nn.Conv1d(c, c, 5, stride=2, padding=2),
                    nn.GELU(),
                )
        self.lstm = nn.LSTM(
            c,
            cfg.hidden_size,
            num_layers=cfg.layers,
            bidirectional=True,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.hidden_size, cfg.vocab_size)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid feature frames for `lengths` valid samples (centred windows: one per hop, plus one)."""
        return torch.div(lengths, self.frontend_cfg.hop_length, rounding_mode="floor") + 1

    def normalise(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Mean and variance per utterance and mel band over its valid frames; padding set to 0 (the mean)."""
        mask = (torch.arange(feats.shape[-1], device=feats.device)[None, :] < frames[:, None]).unsqueeze(1)  # (B,1,T)
        count = frames.clamp(min=1).to(feats.dtype)[:, None, None]
        mean = (feats * mask).sum(-1, keepdim=True) / count
        var = (((feats - mean) * mask) ** 2).sum(-1, keepdim=True) / count
        return (feats - mean) / torch.sqrt(var + 1e-5) * mask

    def spec_augment(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Zero random mel bands and time spans (SpecAugment), a different pattern per utterance."""
        b, n_mels, t = feats.shape
        keep = torch.ones_like(feats)
        bands = torch.arange(n_mels, device=feats.device)[None, :]
        steps = torch.arange(t, device=feats.device)[None, :]
        for _ in range(self.cfg.freq_masks):
            width = torch.randint(0, self.cfg.freq_mask_width + 1, (b, 1), device=feats.device)
            start = (torch.rand(b, 1, device=feats.device) * (n_mels - width)).long()
            keep = keep * ~((bands >= start) & (bands < start + width))[:, :, None]
        for _ in range(self.cfg.time_masks):
            width = (torch.rand(b, 1, device=feats.device) * self.cfg.time_mask_share * frames[:, None]).long()
            start = (torch.rand(b, 1, device=feats.device) * (frames[:, None] - width).clamp(min=1)).long()
            keep = keep * ~((steps >= start) & (steps < start + width))[:, None, :]
        return feats * keep

    def time_masks(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Zero random time spans of (B, T, D) features, a different pattern per utterance (SpecAugment)."""
        b, t, _ = x.shape
        steps = torch.arange(t, device=x.device)[None, :]
        keep = torch.ones(b, t, device=x.device, dtype=x.dtype)
        for _ in range(self.cfg.time_masks):
            width = (torch.rand(b, 1, device=x.device) * self.cfg.time_mask_share * frames[:, None]).long()
            start = (torch.rand(b, 1, device=x.device) * (frames[:, None] - width).clamp(min=1)).long()
            keep = keep * ~((steps >= start) & (steps < start + width))
        return x * keep[:, :, None]

    def from_hidden(self, hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, layers, T, d_model) encoder states with valid `positions` -> (B, ceil(T/2), C) LSTM inputs."""
        x = torch.einsum("l,bltd->btd", torch.softmax(self.layer_weights, 0), hidden.to(self.layer_weights.dtype))
        if self.training:
            x = self.time_masks(x, positions)
        x = torch.nn.functional.pad(x, (0, 0, 0, x.shape[1] % 2))
        x = x.reshape(x.shape[0], x.shape[1] // 2, 2 * x.shape[2])
        return self.project(x), torch.div(positions + 1, 2, rounding_mode="floor")

    def forward(
        self, wave: torch.Tensor | None, lengths: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) float32 16 kHz samples with `lengths` valid ones -> (B, frames, vocab) logits and valid frames.
        With an encoder, training may pass its precomputed states as `hidden` (B, layers, T, d_model) instead of
        `wave`, and then `lengths` are their valid positions."""
        if self.cfg.encoder is not None:
            if hidden is None:
                hidden, lengths = self.encoder(wave, lengths)
            x, frames = self.from_hidden(hidden, lengths)
        else:
            frames = self.frame_lengths(lengths)
            feats = self.normalise(self.warp(self.features(wave)), frames)  # (B, n_mels, T)
            if self.training:
                feats = self.spec_augment(feats, frames)
            if self.cfg.cepstra is not None:
                feats = torch.matmul(self.dct, feats)  # (B, cepstra, T)
            x, frames = self.subsample(feats).transpose(1, 2), subsampled(frames)  # (B, T/4, C)
        x, _ = self.lstm(x)  # (B, frames, 2H)
        return self.head(self.dropout(x)), frames  # (B, frames, V), (B,)
