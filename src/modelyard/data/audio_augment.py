"""Waveform augmentation for speech and sound clips, and fitting a clip to the model's fixed length.

What matters for speech (Ko et al. 2015; Park et al. 2019): speed perturbation (tempo and pitch, a cheap stand-in
for new voices), time shift, background noise at a random SNR and random gain; SpecAugment masks run on the
features inside the model. Noise comes from a folder of recordings when one is given, else coloured noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.fft import next_fast_len

from modelyard.data.audio import EXTENSIONS, AudioError, frame_energy_db, load_audio, resample_ratio

LEVEL_DB = -20.0  # where `normalize_level` puts the loud frames


def speed_ratios(spread: float) -> list[tuple[int, int]]:
    """Resampling ratios (up, down) for speeds from 1 - `spread` to 1 + `spread` in steps of 0.05 (a few
    fixed ratios, so their anti-aliasing filters are designed once)."""
    lowest, highest = round(20 * (1 - spread)), round(20 * (1 + spread))
    return [(f.denominator, f.numerator) for f in (Fraction(d, 20) for d in range(lowest, highest + 1))]


def normalize_level(wave: np.ndarray, target_db: float = LEVEL_DB) -> np.ndarray:
    """Scale so the loud part (95th percentile of 25 ms frame RMS) sits at `target_db` dBFS: a word recorded
    quietly or loudly, near or far from the microphone, reaches the model at one level. Given the window the model
    is fed (silence or noise around a word elsewhere in the file changes nothing), and never louder than its peak
    allows: a gain is never bought by clipping. Silence is left alone."""
    if wave.size == 0:
        return wave
    loud = float(np.percentile(frame_energy_db(wave), 95))
    peak = float(np.max(np.abs(wave)))
    if loud <= -80.0 or peak == 0.0:
        return wave
    gain = min(10 ** ((target_db - loud) / 20), 1.0 / peak)
    return (wave * np.float32(gain)).astype(np.float32)


def model_input(wave: np.ndarray, length: int) -> np.ndarray:
    """What evaluation and serving feed the network: the loudest window (or the clip centred), at one level."""
    return normalize_level(fit_length(wave, length))


def loudest_window(wave: np.ndarray, length: int) -> int:
    """Start of the `length`-sample window holding the most energy: where a long clip's sound is."""
    if wave.size <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(np.square(wave, dtype=np.float64))])
    hop = max(1, length // 20)
    starts = np.arange(0, wave.size - length + 1, hop)
    return int(starts[np.argmax(energy[starts + length] - energy[starts])])


def fit_length(wave: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop or zero-pad to `length` samples. Without `rng` (evaluation, serving): the loudest window, or the clip
    centred; with it (training): a random crop, or a random position (time shift)."""
    if wave.size >= length:
        start = int(rng.integers(0, wave.size - length + 1)) if rng is not None else loudest_window(wave, length)
        return wave[start : start + length]
    room = length - wave.size
    left = int(rng.integers(0, room + 1)) if rng is not None else room // 2
    return np.pad(wave, (left, room - left))


def unit_rms(wave: np.ndarray) -> np.ndarray:
    """`wave` scaled to a root-mean-square of 1 (silence stays silence)."""
    return wave / max(float(np.sqrt(np.mean(wave**2))), 1e-8)


def looped_crop(source: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` samples from a random start in `source` repeated end to end, at unit RMS (a background-noise piece)."""
    tiled = np.tile(source, int(np.ceil(size / source.size)))
    start = int(rng.integers(0, tiled.size - size + 1))
    return unit_rms(tiled[start : start + size])


def coloured_noise(size: int, rng: np.random.Generator, exponent: float | None = None) -> np.ndarray:
    """White, pink or brown noise (1/f^0, 1/f^1, 1/f^2 power: `exponent` 0, 1 or 2, else one drawn), unit RMS.
    Shaped at the next FFT-friendly length and cut to `size`: a speed-perturbed recording's length is often one
    whose FFT is slow (lengths of 2.5-7.5 s of 16 kHz audio: 26 ms a call, against 2.7 ms at the next fast
    length)."""
    exponent = rng.choice([0.0, 1.0, 2.0]) if exponent is None else exponent
    length = next_fast_len(size, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.maximum(np.fft.rfftfreq(length), 1.0 / length)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=length)[:size]
    return unit_rms(noise).astype(np.float32)


@dataclass
class Augmenter:
    """Random speed (up to `speed_spread` either way), gain and background noise (SNR uniform in `snr_db`)
    on 16 kHz waveforms."""

    speed: bool = True
    speed_spread: float = 0.1
    noise_probability: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    gain_db: float = 6.0
    noise_files: list[Path] = field(default_factory=list)
    _noises: dict[Path, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_folder(cls, folder: str | None, **kwargs) -> Augmenter:
        files = []
        if folder:
            root = Path(folder)
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        return cls(noise_files=files, **kwargs)

    def _noise(self, size: int, rng: np.random.Generator) -> np.ndarray:
        if not self.noise_files:
            return coloured_noise(size, rng)
        path = self.noise_files[int(rng.integers(len(self.noise_files)))]
        if path not in self._noises:
            try:
                self._noises[path] = load_audio(path)
            except (AudioError, OSError):
                self._noises[path] = np.zeros(0, dtype=np.float32)
        source = self._noises[path]
        if source.size == 0 or not np.any(source):
            return coloured_noise(size, rng)
        return looped_crop(source, size, rng)

    def __call__(self, wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        """Speed, then a random crop or shift to `length` brought to one level (as `model_input` does), then gain
        and noise over the whole clip, scaled down rather than clipped when they exceed full scale."""
        if self.speed:
            ratios = speed_ratios(self.speed_spread)
            up, down = ratios[int(rng.integers(len(ratios)))]
            if up != down:
                wave = resample_ratio(wave, up, down)
        wave = normalize_level(fit_length(wave, length, rng))
        wave = wave * np.float32(10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20))
        if rng.random() < self.noise_probability and wave.size:
            signal = float(np.sqrt(np.mean(wave**2)))
            snr = rng.uniform(*self.snr_db)
            wave = wave + self._noise(wave.size, rng) * np.float32(signal / 10 ** (snr / 20))
        return (wave / max(1.0, float(np.max(np.abs(wave), initial=0.0)))).astype(np.float32)
