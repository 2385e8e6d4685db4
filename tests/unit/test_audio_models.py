"""Audio classifiers and augmentation: shapes for every backbone, masks only while training, clip fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard.data.audio_augment import (
    Augmenter,
    coloured_noise,
    fit_length,
    loudest_window,
    normalize_level,
    speed_ratios,
)
from modelyard.models.audio_cnn import AudioClassifier, SpecAugment
from modelyard.models.audio_features import FrontEndConfig


@pytest.mark.parametrize(("kind", "widths"), [("tcnn", (16, 24, 32)), ("cnn", (8, 16)), ("crnn", (8, 16))])
def test_every_backbone_maps_waveforms_to_logits_and_features(kind, widths):
    model = AudioClassifier(5, FrontEndConfig(n_mels=32), kind, widths).eval()
    wave = torch.randn(3, 8000) * 0.1
    assert model(wave).shape == (3, 5)
    assert model.features(wave).shape == (3, model.dim)


def test_specaugment_masks_only_in_training():
    masks = SpecAugment(freq=4, time=5, masks=2)
    x = torch.ones(8, 32, 50)
    assert torch.equal(masks.eval()(x), x)
    masked = masks.train()(x)
    assert (masked == 0).any() and (masked == 1).float().mean() > 0.5


def test_fit_length_pads_centred_and_crops_to_the_loudest_window():
    short = np.ones(10, dtype=np.float32)
    assert fit_length(short, 20).tolist() == [0.0] * 5 + [1.0] * 10 + [0.0] * 5
    long = np.zeros(1000, dtype=np.float32)
    long[700:800] = 1.0
    start = loudest_window(long, 200)
    assert start <= 700 and start + 200 >= 800
    assert fit_length(long, 200).sum() == 100


def test_augmentation_keeps_the_length_and_mixes_noise_at_the_asked_snr():
    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(np.arange(12000) / 5)).astype(np.float32)
    augment = Augmenter(speed=True, noise_probability=1.0, snr_db=(10.0, 10.0), gain_db=0.0)
    out = augment(wave, 16000, rng)
    assert out.shape == (16000,) and out.dtype == np.float32
    clean = Augmenter(speed=False, noise_probability=1.0, snr_db=(10.0, 10.0), gain_db=0.0)
    mixed = clean(wave, wave.size, np.random.default_rng(1))
    level = normalize_level(wave)  # the clip at the model's level, which noise is mixed into
    noise = mixed - level
    snr = 10 * np.log10(np.mean(level**2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_speed_ratios_span_the_asked_speeds_in_lowest_terms():
    speeds = sorted(down / up for up, down in speed_ratios(0.2))
    assert speeds[0] == pytest.approx(0.8) and speeds[-1] == pytest.approx(1.2) and len(speeds) == 9
    assert (1, 1) in speed_ratios(0.1) and speed_ratios(0.0) == [(1, 1)]


@pytest.mark.parametrize("size", [4000, 64007])  # 64007 is prime: the noise is shaped at a faster FFT length
def test_coloured_noise_has_unit_rms(size):
    noise = coloured_noise(size, np.random.default_rng(3))
    assert noise.shape == (size,) and noise.dtype == np.float32
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-3)


def test_level_normalisation_makes_quiet_and_loud_recordings_alike():
    word = (0.5 * np.sin(np.arange(8000) / 7)).astype(np.float32)
    loud, quiet = normalize_level(word), normalize_level(word * 0.01)
    np.testing.assert_allclose(loud, quiet, atol=1e-4)
    assert np.array_equal(normalize_level(np.zeros(100, dtype=np.float32)), np.zeros(100, dtype=np.float32))


def test_a_clip_padded_with_silence_or_quiet_noise_reaches_the_model_at_its_own_level_unclipped():
    from audio_helpers import DIGITS

    from modelyard.data.audio import frame_energy_db, read_audio
    from modelyard.data.audio_augment import model_input

    word = read_audio(DIGITS / "1_george_0.wav")[0]
    pad = np.zeros(4 * 16000, dtype=np.float32)
    hiss = (10 ** (-50 / 20) * np.random.default_rng(0).standard_normal(pad.size)).astype(np.float32)
    copies = [word, np.concatenate([pad, word, pad]), np.concatenate([hiss, word, hiss])]
    fed = [model_input(wave, 16000) for wave in copies]
    levels = [float(np.percentile(frame_energy_db(clip), 95)) for clip in fed]
    assert max(levels) - min(levels) < 0.5
    assert all(np.max(np.abs(clip)) <= 1.0 and np.mean(np.abs(clip) >= 0.99) < 0.001 for clip in fed)


def test_augmented_training_clips_are_scaled_down_rather_than_clipped():
    word = (0.9 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    augment = Augmenter(speed=False, noise_probability=1.0, gain_db=12.0)
    clips = [augment(word, 16000, np.random.default_rng(seed)) for seed in range(8)]
    assert all(np.max(np.abs(clip)) <= 1.0 and np.mean(np.abs(clip) >= 0.999) < 0.001 for clip in clips)


def test_spectrum_shift_moves_bands_only_while_training():
    shift = SpecAugment(freq=0, time=0, masks=0, shift=2).train()
    x = torch.arange(10.0)[None, :, None].repeat(4, 1, 3)  # band index as value
    moved = shift(x)
    offsets = (x - moved)[:, 5, 0]
    assert set(offsets.tolist()) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert torch.equal(shift.eval()(x), x)


def test_a_mean_normalised_classifier_exports_to_onnx_exactly(tmp_path):
    import onnxruntime as ort

    model = AudioClassifier(4, FrontEndConfig(n_mels=32, f_max=4000.0), "cnn", (8, 16), mean_norm=True).eval()
    wave = torch.randn(2, 8000) * 0.05
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (wave,), str(path), dynamo=False, opset_version=17, input_names=["audio"])
    got = ort.InferenceSession(str(path)).run(None, {"audio": wave.numpy()})[0]
    np.testing.assert_allclose(got, model(wave).detach().numpy(), atol=1e-4)


def test_mel_warp_moves_formants_up_or_down_and_only_while_training():
    from modelyard.models.audio_augment import MelWarp

    warp = MelWarp(FrontEndConfig(n_mels=40, f_max=4000.0), spread=0.2)
    x = torch.zeros(3, 40, 2)
    x[:, 15] = 1.0  # one formant-like peak
    out = warp.warp(x, torch.tensor([1.0, 1.15, 0.85]))
    peaks = out[:, :, 0].argmax(1).tolist()
    assert torch.allclose(out[0], x[0]) and peaks[1] > 15 > peaks[2]
    ends = warp.source_bands(torch.tensor([0.8, 1.2]))
    assert (ends[:, -1] > 37.5).all() and (ends.diff(dim=1) >= 0).all()  # f_max is fixed, monotone
    assert torch.equal(warp.eval()(x), x) and not torch.equal(warp.train()(x), x)
