"""The Whisper encoder rebuilt in PyTorch from the bundled CTranslate2 files computes what CTranslate2 computes:
the same log-mel features as faster-whisper's extractor and the same encoder states, on a real recording."""

from __future__ import annotations

import struct

import ctranslate2
import numpy as np
import pytest
import torch
from audio_helpers import DIGITS

from modelyard.data.audio import read_audio
from modelyard.data.audio_augment import fit_length, normalize_level
from modelyard.errors import BundleError
from modelyard.models.ct2_weights import read_variables
from modelyard.models.whisper_ct2 import load_whisper
from modelyard.models.whisper_encoder import WhisperAudioClassifier, WhisperHiddenStates, pretrained_encoder

NAME = "whisper-tiny.en"


@pytest.fixture(scope="module")
def encoder() -> tuple[dict, dict]:
    return pretrained_encoder(NAME)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return fit_length(normalize_level(read_audio(DIGITS / "3_theo_1.wav")[0]), 16000)


def test_the_encoder_sizes_are_read_off_the_tensors(encoder):
    shape, variables = encoder
    assert shape == {
        "d_model": 384,
        "num_mel_bins": 80,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "encoder_ffn_dim": 1536,
    }
    assert not any(name.startswith("decoder/") for name in variables)


def test_front_end_and_encoder_match_ctranslate2_on_a_real_recording(encoder, clip):
    shape, variables = encoder
    module = WhisperAudioClassifier(10, shape, clip.size)
    module.load_pretrained(variables)
    module.eval()
    reference = load_whisper(NAME, 1, compute_type="float32")
    expected_mel = reference.feature_extractor(clip)[:, : clip.size // 160]  # (80, 100)
    with torch.no_grad():
        mel = module.frontend(torch.from_numpy(clip)[None])[0].numpy()
        hidden = module.encoder(torch.from_numpy(expected_mel[None].astype(np.float32))).last_hidden_state[0]
    # faster-whisper pads 160 zeros at the end, which changes the last frames only
    np.testing.assert_allclose(mel[:, :-2], expected_mel[:, :-2], atol=1e-4)
    states = reference.model.encode(ctranslate2.StorageView.from_array(expected_mel[None].astype(np.float32)))
    np.testing.assert_allclose(hidden.numpy(), np.array(states, copy=True)[0], atol=1e-3)


def test_a_band_limit_drops_the_spectrum_above_it(encoder, clip):
    shape, _ = encoder
    full = WhisperAudioClassifier(2, shape, clip.size).frontend
    limited = WhisperAudioClassifier(2, shape, clip.size, max_hz=4000.0).frontend
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, clip.size).astype(np.float32))[None]
    with torch.no_grad():
        a, b = full(noise)[0], limited(noise)[0]
    assert torch.allclose(a[:40], b[:40], atol=1e-4)  # low bands unchanged (noise is white, the peak stays low)
    assert (b[-15:] == b.min()).all() and (a[-15:] > a.min()).all()  # bands above 4 kHz (64-79) at the floor


@pytest.fixture(scope="module")
def hidden_states(encoder) -> WhisperHiddenStates:
    shape, variables = encoder
    module = WhisperHiddenStates(shape)
    module.load_pretrained(variables)
    return module.eval()


def test_hidden_states_are_the_encoders_and_do_not_depend_on_the_batch(hidden_states, encoder, clip):
    shape, variables = encoder
    classifier = WhisperAudioClassifier(2, shape, clip.size)
    classifier.load_pretrained(variables)
    longer = read_audio(DIGITS / "7_george_3.wav")[0]
    wave = torch.zeros(2, max(clip.size, longer.size) + 1000)
    wave[0, : clip.size], wave[1, : longer.size] = torch.from_numpy(clip), torch.from_numpy(longer)
    with torch.no_grad():
        alone, positions = hidden_states(torch.from_numpy(clip)[None], torch.tensor([clip.size]))
        batched, both = hidden_states(wave, torch.tensor([clip.size, longer.size]))
        reference = classifier.eval().encoder(classifier.frontend(torch.from_numpy(clip)[None])).last_hidden_state
    assert alone.shape[1] == 4 and positions.tolist() == [50] and both.tolist() == [50, -(-longer.size // 320)]
    np.testing.assert_allclose(alone[0, :, :50].numpy(), batched[0, :, :50].numpy(), atol=1e-4)
    # the last layer is Whisper's encoder output (the final frame differs: zeros after the clip, not a reflection)
    np.testing.assert_allclose(alone[0, -1, :49].numpy(), reference[0, :49].numpy(), atol=2e-2)
    assert not any(p.requires_grad for p in hidden_states.parameters())


def test_hidden_states_take_30_seconds_and_refuse_more(hidden_states):
    with torch.no_grad():
        states, positions = hidden_states(torch.zeros(1, 16000 * 30), torch.tensor([16000 * 30]))
    assert states.shape[2] == 1500 and positions.tolist() == [1500]
    with pytest.raises(ValueError, match="at most 30 s"):
        hidden_states(torch.zeros(1, 16000 * 30 + 1), torch.tensor([16000 * 30 + 1]))


def test_clips_must_be_whole_encoder_positions(encoder):
    with pytest.raises(ValueError, match="multiple of 320"):
        WhisperAudioClassifier(2, encoder[0], 16001)


def test_an_unknown_format_version_is_a_clear_error():
    with pytest.raises(BundleError, match="format version 5"):
        read_variables(struct.pack("<I", 5))
