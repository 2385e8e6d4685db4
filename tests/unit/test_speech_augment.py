"""Training-time augmentation of the CTC recogniser: vocal-tract-length perturbation in the model, speed and noise
in the dataset. Each acts only while training, so the exported graph and evaluation see the plain recogniser."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from modelyard.learners import speech_ctc
from modelyard.learners.speech_ctc import SpeechDataset, cepstra_for
from modelyard.models.ctc import CTCConfig, CTCRecognizer


def recogniser(vtlp: float) -> CTCRecognizer:
    torch.manual_seed(0)
    return CTCRecognizer(CTCConfig(vocab_size=12, n_mels=32, conv_channels=16, hidden_size=16, layers=1, vtlp=vtlp))


def test_vtlp_keeps_shapes_and_lengths_is_seeded_and_is_off_in_eval_mode():
    warped, plain = recogniser(0.1), recogniser(0.0)
    assert [k for k in warped.state_dict()] == [k for k in plain.state_dict()]  # no new weights in the bundle
    wave, lengths = torch.randn(3, 12000) * 0.1, torch.tensor([12000, 9000, 4000])
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(warped.train().warp(warped.features(wave)))
    feats = plain.features(wave)
    assert runs[0].shape == feats.shape and torch.equal(runs[0], runs[1]) and not torch.allclose(runs[0], feats)
    logits, frames = warped.eval()(wave, lengths)
    reference, reference_frames = plain.eval()(wave, lengths)
    assert torch.equal(logits, reference) and torch.equal(frames, reference_frames)


def test_training_samples_get_speed_noise_and_gain_evaluation_samples_are_untouched(tmp_path):
    tone = (0.3 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", tone, 16000, subtype="PCM_16")
    args = ([str(tmp_path / "a.wav")], [[1, 2]], [1.0])
    plain = SpeechDataset(*args, training=False, seed=0, noise_snr_db=(0.0, 0.0))[0]["wave"]
    np.testing.assert_allclose(plain, tone, atol=1e-4)
    sizes, noisy = set(), SpeechDataset(*args, training=True, seed=0, speed=(0.8, 1.2), noise_snr_db=(0.0, 0.0))
    for _ in range(20):
        wave = noisy[0]["wave"]
        sizes.add(wave.size)
        assert 16000 / 1.2 - 2 <= wave.size <= 16000 / 0.8 + 1 and wave.dtype == np.float32
    assert len(sizes) > 10  # a continuous range of speeds, not three
    steady = SpeechDataset(*args, training=True, seed=0, speed=(1.0, 1.0), noise_snr_db=(0.0, 0.0))[0]["wave"]
    residual = steady / (np.dot(steady, tone) / np.dot(tone, tone)) - tone  # gain taken out: the added noise
    assert 0.5 < np.sqrt(np.mean(residual**2)) / np.sqrt(np.mean(tone**2)) < 2.0  # 0 dB SNR


def test_noise_is_cropped_from_white_pink_and_brown_buffers_made_once(monkeypatch):
    monkeypatch.setattr(speech_ctc, "NOISE_BANK_SECONDS", 0.5)  # 8,000 samples a buffer
    dataset = SpeechDataset([], [], [], training=True, seed=0, noise_snr_db=(0.0, 0.0))
    first, second, longer = dataset.noise(4000), dataset.noise(4000), dataset.noise(20000)  # the last one tiled
    bank = list(dataset.noise_bank)
    dataset.noise(100)
    assert [b.size for b in bank] == [8000] * 3 and all(a is b for a, b in zip(bank, dataset.noise_bank, strict=True))
    assert first.shape == second.shape == (4000,) and longer.shape == (20000,) and not np.array_equal(first, second)
    for crop in (first, second, longer):
        assert np.sqrt(np.mean(crop**2)) == pytest.approx(1.0, rel=1e-3)


def test_cepstra_feed_the_first_dct_coefficients_of_the_normalised_bands_to_the_convolutions():
    torch.manual_seed(0)
    cfg = CTCConfig(vocab_size=12, n_mels=32, conv_channels=16, hidden_size=16, layers=1, cepstra=10)
    model = CTCRecognizer(cfg).eval()
    assert model.subsample[0].in_channels == 10 and "dct" not in model.state_dict()  # rebuilt from the config
    wave, lengths = torch.randn(2, 12000) * 0.1, torch.tensor([12000, 8000])
    logits, frames = model(wave, lengths)
    assert logits.shape[:2] == (2, int(frames.max())) and frames.tolist() == [19, 13]
    bands = model.normalise(model.features(wave), model.frame_lengths(lengths))
    c0 = bands.sum(1) / np.sqrt(32)  # the orthonormal DCT's first coefficient: the scaled sum of the bands
    assert torch.allclose(torch.matmul(model.dct, bands)[:, 0], c0, atol=1e-5)


def test_conv2d_subsampling_gives_the_same_frames_and_moves_with_a_formant_shift():
    torch.manual_seed(0)
    cfg = CTCConfig(vocab_size=12, n_mels=32, conv_channels=16, hidden_size=16, layers=1, subsampling="conv2d")
    model = CTCRecognizer(cfg).eval()
    wave, lengths = torch.randn(2, 12000) * 0.1, torch.tensor([12000, 8000])
    logits, frames = model(wave, lengths)
    assert frames.tolist() == [19, 13] and logits.shape[:2] == (2, 19)
    feats = torch.zeros(1, 32, 40)
    feats[0, 8, :] = 1.0  # one band lit; the same pattern 4 bands higher lights the same filters one row up
    moved = torch.roll(feats, 4, dims=1)
    conv = model.subsample.conv
    assert torch.allclose(conv(feats.unsqueeze(1))[..., 2:4, :], conv(moved.unsqueeze(1))[..., 3:5, :])


def test_auto_cepstra_are_13_for_alphabetic_transcripts_and_every_band_for_chinese():
    assert cepstra_for("auto", ["nine one one", "call me back"]) == 13
    assert cepstra_for("auto", ["我想查一下订单", "退款什么时候到账"]) is None  # tones live in the pitch harmonics
    assert cepstra_for(20, ["我想查一下订单"]) == 20 and cepstra_for(None, ["nine"]) is None
