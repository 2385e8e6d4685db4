"""Small audio classifiers from scratch: waveform -> log-mel front end -> CNN (or CNN + GRU) -> class logits.

The front end is part of the module, so the bundle's weights, the ONNX graph and serving all compute exactly the
features the model was trained on. SpecAugment masks run inside `forward` in training mode only.
"""

from __future__ import annotations

import torch
from torch import nn

from modelyard.models.audio_features import FrontEndConfig, frontend


class SpecAugment(nn.Module):
    """Zero `masks` random frequency bands (up to `freq` bins) and time spans (up to `time` frames) per example
    of the normalised features (Park et al. 2019); zero is the mean after input normalisation."""

    def __init__(self, freq: int, time: int, masks: int) -> None:
        super().__init__()
        self.freq, self.time, self.masks = freq, time, masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, F, T)
        if not self.training or self.masks == 0:
            return x
        b, f, t = x.shape
        keep = torch.ones_like(x, dtype=torch.bool)
        for size, axis, limit in ((self.freq, 1, f), (self.time, 2, t)):
            for _ in range(self.masks):
                width = torch.randint(0, min(size, limit) + 1, (b, 1), device=x.device)
                start = (torch.rand(b, 1, device=x.device) * (limit - width + 1)).long()
                pos = torch.arange(limit, device=x.device)[None]
                band = (pos >= start) & (pos < start + width)  # (B, limit)
                keep &= ~(band[:, :, None] if axis == 1 else band[:, None, :])
        return x * keep


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class AudioClassifier(nn.Module):
    """A strided stem, then conv stages of two 3x3 convolutions and a 2x2 max-pool each. `kind` "cnn": mean + max pooling over frequency and time; "crnn": conv stages, mean over
    frequency, a bidirectional GRU over time, mean + max over time. `features` gives the pooled vector."""

    def __init__(
        self,
        num_classes: int,
        frontend_config: FrontEndConfig,
        kind: str = "cnn",
        widths: tuple[int, ...] = (24, 48, 96),
        dropout: float = 0.3,
        spec_augment: tuple[int, int, int] = (8, 10, 2),
    ) -> None:
        super().__init__()
        self.kind = kind
        self.frontend = frontend(frontend_config)
        bins = frontend_config.n_mfcc if frontend_config.kind == "mfcc" else frontend_config.n_mels
        self.norm = nn.BatchNorm1d(bins)  # per-band input standardisation, learnt running statistics
        self.augment = SpecAugment(*spec_augment)
        stem = nn.Sequential(  # stride 2 in frequency and time: 4x fewer positions for every later layer
            nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, cin = [stem], widths[0]
        for width in widths[1:]:
            stages.append(conv_block(cin, width))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.rnn = nn.GRU(cin, cin // 2, batch_first=True, bidirectional=True) if kind == "crnn" else None
        self.dim = 2 * cin
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.dim, num_classes))

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        # wave (B, N) 16 kHz mono
        x = self.augment(self.norm(self.frontend(wave)))  # (B, F, T)
        x = self.stages(x.unsqueeze(1))  # (B, C, F', T')
        if self.rnn is None:
            flat = x.flatten(2)  # (B, C, F'T')
            return torch.cat([flat.mean(-1), flat.amax(-1)], dim=1)  # (B, 2C)
        seq, _ = self.rnn(x.mean(2).transpose(1, 2))  # (B, T', C)
        return torch.cat([seq.mean(1), seq.amax(1)], dim=1)  # (B, 2C)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(wave))  # (B, num_classes)
