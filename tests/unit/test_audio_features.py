"""The torch log-mel / MFCC front end matches the textbook definition, exports to ONNX, and the VAD finds speech."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch
from audio_helpers import DIGITS

from modelyard.data.audio import load_audio
from modelyard.models import audio_features as af


def test_logmel_equals_a_centred_complex_stft_through_the_mel_filterbank():
    cfg = af.FrontEndConfig()
    module = af.LogMel(cfg)
    wave = torch.randn(2, 16000) * 0.1
    out = module(wave)
    assert out.shape == (2, cfg.n_mels, af.frames(cfg, 16000))
    power = torch.stft(wave, cfg.n_fft, cfg.hop_length, window=module.window, pad_mode="constant", return_complex=True)
    expected = torch.log(power.abs().pow(2).transpose(1, 2) @ module.fbank + cfg.log_floor).transpose(1, 2)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_mel_filters_cover_the_band_and_peak_at_one():
    fbank = af.mel_filterbank(af.FrontEndConfig(n_mels=40))
    assert fbank.shape == (257, 40)
    assert torch.all(fbank.max(dim=0).values > 0.5)  # no empty filter
    assert float(fbank.max()) <= 1.0


def test_mfcc_zeroth_coefficient_tracks_loudness():
    cfg = af.FrontEndConfig(kind="mfcc", n_mfcc=13)
    module = af.frontend(cfg)
    wave = torch.randn(1, 8000) * 0.01
    quiet, loud = module(wave), module(wave * 10)
    assert quiet.shape == (1, 13, af.frames(cfg, 8000))
    assert float((loud[0, 0] - quiet[0, 0]).mean()) > 10  # +20 dB in every band raises c0 by about sqrt(n) * ln(100)


def test_a_config_round_trips_through_a_plain_dict():
    cfg = af.FrontEndConfig(kind="mfcc", n_mels=40, f_max=4000.0)
    assert af.FrontEndConfig(**cfg.asdict()) == cfg


def test_the_front_end_exports_to_onnx_with_any_length(tmp_path):
    module = af.frontend(af.FrontEndConfig(kind="mfcc")).eval()
    path = tmp_path / "fe.onnx"
    torch.onnx.export(
        module,
        (torch.randn(1, 16000),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["audio"],
        output_names=["features"],
        dynamic_axes={"audio": {0: "batch", 1: "samples"}},
    )
    wave = torch.tensor(load_audio(DIGITS / "3_theo_1.wav"))[None]
    got = ort.InferenceSession(str(path)).run(None, {"audio": wave.numpy()})[0]
    np.testing.assert_allclose(got, module(wave).detach().numpy(), atol=2e-3)


def test_vad_finds_the_two_words_and_chunks_respect_the_limit():
    word = load_audio(DIGITS / "7_jackson_0.wav")
    pause = np.random.default_rng(0).normal(0, 1e-4, 16000).astype(np.float32)
    long = np.concatenate([pause, word, pause, word, pause])
    segments = af.voice_segments(long)
    assert len(segments) == 2
    first = segments[0]
    assert first[0] <= 16000 + 1600 and first[1] >= 16000 + word.size - 1600
    for start, end in af.chunks(long, max_seconds=0.2):
        assert 0 < end - start <= 3200
    assert af.chunks(long, max_seconds=30) == [(segments[0][0], segments[1][1])]
