"""Audio front end in plain torch (torchaudio has no build for our torch): log-mel spectrogram and MFCC, plus an
energy voice-activity detector for cutting long recordings into chunks.

Public API (kept small and stable; speech tasks build on it):
- `FrontEndConfig`: every parameter of the front end; `asdict()` goes into the bundle and `FrontEndConfig(**d)`
  rebuilds exactly the same features at serving time.
- `LogMel(config)`: (B, N) 16 kHz waveform -> (B, n_mels, T) natural-log mel energies; `MFCC(config)`: ->
  (B, n_mfcc, T). Both are nn.Modules with constant buffers only and export to ONNX (opset 17, TorchScript
  exporter: the STFT runs with center=False and explicit padding, the form ONNX's STFT op supports).
  `frontend(config)` picks one from `config.kind`; `frames(config, samples)` says how many frames come out.
- `voice_segments(samples)`: (start, end) sample ranges holding sound above the noise floor;
  `chunks(samples, max_seconds)`: ranges of at most `max_seconds`, cut in pauses where possible.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.data.audio import SAMPLE_RATE, frame_energy_db


@dataclass(frozen=True)
class FrontEndConfig:
    """25 ms Hann windows every 10 ms, 64 HTK mel bands over 20-8000 Hz: the usual speech front end."""

    kind: Literal["logmel", "mfcc"] = "logmel"
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 20.0
    f_max: float = 8000.0
    n_mfcc: int = 20
    log_floor: float = 1e-6

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontEndConfig) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular HTK-mel filters with peak 1 (torchaudio's default `melscale_fbanks`)."""
    freqs = np.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2))
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lower) / (center - lower)
    falling = (upper - freqs[:, None]) / (upper - center)
    return torch.tensor(np.maximum(0.0, np.minimum(rising, falling)), dtype=torch.float32)


def dct_matrix(n_mels: int, n_mfcc: int) -> torch.Tensor:
    """(n_mels, n_mfcc) orthonormal DCT-II, as torchaudio's `create_dct(norm="ortho")`."""
    n = np.arange(n_mels)[:, None]
    k = np.arange(n_mfcc)[None, :]
    basis = np.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[:, 0] /= math.sqrt(2.0)
    return torch.tensor(basis, dtype=torch.float32)


def frames(cfg: FrontEndConfig, samples: int) -> int:
    """Frames produced for `samples` input samples (centred windows: one per hop, plus one)."""
    return samples // cfg.hop_length + 1


class LogMel(nn.Module):
    def __init__(self, cfg: FrontEndConfig) -> None:
        super().__init__()
        self.cfg = cfg
        window = torch.hann_window(cfg.win_length, periodic=True)
        left = (cfg.n_fft - cfg.win_length) // 2
        self.register_buffer("window", F.pad(window, (left, cfg.n_fft - cfg.win_length - left)), persistent=False)
        self.register_buffer("fbank", mel_filterbank(cfg), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # wave (B, N) float32 in [-1, 1]
        half = self.cfg.n_fft // 2
        padded = F.pad(wave, (half, half))  # centred frames, zero padding (reflect needs N > n_fft)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # return_complex=False is what the ONNX STFT op exports
            spec = torch.stft(
                padded,
                self.cfg.n_fft,
                hop_length=self.cfg.hop_length,
                window=self.window,
                center=False,
                return_complex=False,
            )  # (B, F, T, 2)
        power = spec.pow(2).sum(-1)  # (B, F, T)
        mel = torch.matmul(power.transpose(1, 2), self.fbank)  # (B, T, n_mels)
        return torch.log(mel + self.cfg.log_floor).transpose(1, 2)  # (B, n_mels, T)


class MFCC(nn.Module):
    def __init__(self, cfg: FrontEndConfig) -> None:
        super().__init__()
        self.logmel = LogMel(cfg)
        self.register_buffer("dct", dct_matrix(cfg.n_mels, cfg.n_mfcc), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logmel = self.logmel(wave)  # (B, n_mels, T)
        return torch.matmul(logmel.transpose(1, 2), self.dct).transpose(1, 2)  # (B, n_mfcc, T)


def frontend(cfg: FrontEndConfig) -> nn.Module:
    """The front-end module `cfg.kind` names."""
    return MFCC(cfg) if cfg.kind == "mfcc" else LogMel(cfg)


def voice_segments(
    samples: np.ndarray,
    rate: int = SAMPLE_RATE,
    margin_db: float = 12.0,
    floor_db: float = -50.0,
    min_speech_ms: int = 100,
    min_pause_ms: int = 300,
    pad_ms: int = 100,
) -> list[tuple[int, int]]:
    """Sample ranges with sound: frames `margin_db` over the noise floor (10th percentile of frame energy) and
    above `floor_db`; pauses shorter than `min_pause_ms` are bridged, blips under `min_speech_ms` dropped, and
    each range padded by `pad_ms`."""
    energy = frame_energy_db(samples, rate)
    hop = rate // 100  # frame_energy_db's 10 ms hop
    threshold = max(floor_db, float(np.percentile(energy, 10)) + margin_db)
    active = energy > threshold
    segments: list[list[int]] = []
    for index in np.flatnonzero(active):
        if segments and index - segments[-1][1] <= min_pause_ms // 10:
            segments[-1][1] = int(index)
        else:
            segments.append([int(index), int(index)])
    pad = pad_ms * rate // 1000
    out = []
    for first, last in segments:
        if (last - first + 1) * 10 < min_speech_ms:
            continue
        out.append((max(0, first * hop - pad), min(samples.size, last * hop + rate * 25 // 1000 + pad)))
    return out


def chunks(samples: np.ndarray, max_seconds: float = 30.0, rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """Cut a long recording into ranges of at most `max_seconds`: voice segments are grouped greedily, and a
    segment longer than the limit is cut at fixed length. Silence between groups is left out."""
    limit = int(max_seconds * rate)
    pieces: list[tuple[int, int]] = []
    for start, end in voice_segments(samples, rate):
        while end - start > limit:
            pieces.append((start, start + limit))
            start += limit
        if pieces and end - pieces[-1][0] <= limit and start >= pieces[-1][1]:
            pieces[-1] = (pieces[-1][0], end)
        else:
            pieces.append((start, end))
    return pieces
