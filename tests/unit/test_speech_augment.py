"""Training-time augmentation of the CTC recogniser: vocal-tract-length perturbation in the model, speed and noise
in the dataset. Each acts only while training, so the exported graph and evaluation see the plain recogniser."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from modelyard.learners.speech_ctc import SpeechDataset
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
