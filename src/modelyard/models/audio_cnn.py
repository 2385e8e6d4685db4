"""Small audio classifiers from scratch: waveform -> log-mel front end -> 2-D CNN, 1-D temporal CNN or CRNN.

The front end is part of the module, so the bundle's weights, the ONNX graph and serving all compute exactly the
features the model was trained on. SpecAugment masks run inside `forward` in training mode only.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from modelyard.models.audio_augment import MelWarp
from modelyard.models.audio_features import FrontEndConfig, frontend


class SpecAugment(nn.Module):
    """Zero `masks` random frequency bands (up to `freq` bins) and time spans (up to `time` frames) per example
    of the normalised features (Park et al. 2019); zero is the mean after input normalisation."""

    def __init__(self, freq: int, time: int, masks: int, shift: int = 0) -> None:
        super().__init__()
        self.freq, self.time, self.masks, self.shift = freq, time, masks, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, F, T)
        if not self.training:
            return x
        b, f, t = x.shape
        if self.shift:  # move the spectrum up or down by up to `shift` bands: another vocal tract length (VTLP-like)
            offset = torch.randint(-self.shift, self.shift + 1, (b, 1, 1), device=x.device)
            index = (torch.arange(f, device=x.device)[None, :, None] - offset).clamp(0, f - 1)
            x = x.gather(1, index.expand(b, f, t))
        if self.masks == 0:
            return x
        keep = torch.ones_like(x, dtype=torch.bool)
        for size, axis, limit in ((self.freq, 1, f), (self.time, 2, t)):
            for _ in range(self.masks):
                width = torch.randint(0, min(size, limit) + 1, (b, 1), device=x.device)
                start = (torch.rand(b, 1, device=x.device) * (limit - width + 1)).long()
                pos = torch.arange(limit, device=x.device)[None]
                band = (pos >= start) & (pos < start + width)  # (B, limit)
                keep &= ~(band[:, :, None] if axis == 1 else band[:, None, :])
        return x * keep


def utterance_mean_norm(x: torch.Tensor, range_nats: float = 8.0) -> torch.Tensor:
    """Subtract each band's mean over the sounding frames (within `range_nats`, about 35 dB, of the loudest):
    cepstral mean normalisation, which removes a microphone's or room's fixed colouring; padding and silence
    do not count towards the mean."""
    # x (B, F, T) log energies
    frame = x.mean(1, keepdim=True)  # (B, 1, T)
    weight = (frame > frame.amax(-1, keepdim=True) - range_nats).float()
    mean = (x * weight).sum(-1, keepdim=True) / weight.sum(-1, keepdim=True)  # (B, F, 1)
    return x - mean


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


class TemporalBlock(nn.Module):
    """Two 1-D convolutions over time (k=9, mel bands as channels) with a residual path, as in TC-ResNet
    (Choi et al. 2019): a few million multiply-adds per second of audio, 10-20x less than a 2-D CNN."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cin, cout, 9, stride=stride, padding=4, bias=False),
            nn.BatchNorm1d(cout),
            nn.ReLU(inplace=True),
            nn.Conv1d(cout, cout, 9, padding=4, bias=False),
            nn.BatchNorm1d(cout),
        )
        same = cin == cout and stride == 1
        self.skip = (
            nn.Identity() if same else nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))  # (B, C, T / stride)


class AudioClassifier(nn.Module):
    """`kind` "tcnn": 1-D residual blocks over time (mel bands as channels), mean + max over time. Otherwise a
    strided stem, then stages of two 3x3 convolutions and a 2x2 max-pool each; "cnn": mean + max over frequency
    and time; "crnn": mean over frequency, a bidirectional GRU over time, mean + max over time. `features` gives
    the pooled vector the head reads."""

    def __init__(
        self,
        num_classes: int,
        frontend_config: FrontEndConfig,
        kind: str = "cnn",
        widths: tuple[int, ...] = (24, 48, 96),
        dropout: float = 0.3,
        spec_augment: tuple[int, ...] = (8, 10, 2, 0),
        mean_norm: bool = False,
        vtlp: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.mean_norm = mean_norm
        self.frontend = frontend(frontend_config)
        self.warp = MelWarp(frontend_config, vtlp if frontend_config.kind == "logmel" else 0.0)
        bins = frontend_config.n_mfcc if frontend_config.kind == "mfcc" else frontend_config.n_mels
        self.norm = nn.BatchNorm1d(bins)  # per-band input standardisation, learnt running statistics
        self.augment = SpecAugment(*spec_augment)
        if kind == "tcnn":
            stem = nn.Sequential(nn.Conv1d(bins, widths[0], 3, padding=1, bias=False), nn.BatchNorm1d(widths[0]))
            stages = [stem, nn.ReLU(inplace=True)]
            stages += [TemporalBlock(a, b, 2) for a, b in itertools.pairwise(widths)]
        else:
            stem = nn.Sequential(  # stride 2 in frequency and time: 4x fewer positions for every later layer
                nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(inplace=True),
            )
            stages = [stem] + [conv_block(a, b) for a, b in itertools.pairwise(widths)]
        cin = widths[-1]
        self.stages = nn.Sequential(*stages)
        self.rnn = nn.GRU(cin, cin // 2, batch_first=True, bidirectional=True) if kind == "crnn" else None
        self.dim = 2 * cin
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.dim, num_classes))

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        # wave (B, N) 16 kHz mono
        x = self.warp(self.frontend(wave))  # (B, F, T); a random frequency warp while training
        if self.mean_norm:
            x = utterance_mean_norm(x)
        x = self.augment(self.norm(x))
        if self.kind == "tcnn":
            x = self.stages(x)  # (B, C, T')
            return torch.cat([x.mean(-1), x.amax(-1)], dim=1)  # (B, 2C)
        x = self.stages(x.unsqueeze(1))  # (B, C, F', T')
        if self.rnn is None:
            flat = x.flatten(2)  # (B, C, F'T')
            return torch.cat([flat.mean(-1), flat.amax(-1)], dim=1)  # (B, 2C)
        seq, _ = self.rnn(x.mean(2).transpose(1, 2))  # (B, T', C)
        return torch.cat([seq.mean(1), seq.amax(1)], dim=1)  # (B, 2C)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(wave))  # (B, num_classes)
