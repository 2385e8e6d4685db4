"""Audio is checked from its header before it is decoded, and decoded in blocks: a few KB of compressed silence
claiming many channels or hours at a high rate cannot make a reader allocate gigabytes."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from modelyard import cancellation
from modelyard.data.audio import AudioError, StreamResampler, audio_seconds, read_audio, resample


def encoded(frames: int, channels: int, rate: int, fmt: str = "FLAC") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((frames, channels), np.int16), rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def test_a_file_with_more_than_eight_channels_is_refused_before_decoding():
    with pytest.raises(AudioError, match=r"^unsupported: 9 channels \(at most 8\)"):
        read_audio(encoded(1000, 9, 16_000, "WAV"))


def test_a_sample_rate_above_192_khz_is_refused_before_decoding():
    with pytest.raises(AudioError, match=r"^unsupported: a sample rate of 384,000 Hz"):
        read_audio(encoded(1000, 1, 384_000, "WAV"))


def test_decoding_memory_follows_the_16_khz_output_not_the_sources_channels_and_rate():
    data = encoded(192_000 * 10, 8, 192_000)  # 10 s: 61 MB as 8 float32 channels, 0.6 MB as 16 kHz mono
    tracemalloc.start()
    try:
        samples, info = read_audio(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples.shape == (160_000,) and info.channels == 8 and info.seconds == pytest.approx(10)
    assert peak < 12_000_000, f"decoding held {peak / 1e6:.0f} MB"


def test_resampling_block_by_block_equals_resampling_the_whole_signal():
    rng = np.random.default_rng(0)
    for rate in (44_100, 8_000, 48_000, 44_101):
        signal = (rng.standard_normal(rate * 2 + 123) * 0.1).astype(np.float32)
        stream, pieces, start = StreamResampler(rate), [], 0
        while start < signal.size:
            size = int(rng.integers(1, 30_000))
            pieces.append(stream.feed(signal[start : start + size]))
            start += size
        pieces.append(stream.finish())
        np.testing.assert_allclose(np.concatenate(pieces), resample(signal, rate), atol=1e-6)


def test_a_stereo_file_still_reads_as_the_mean_of_its_channels():
    left = np.sin(np.linspace(0, 200, 16_000)).astype(np.float32) * 0.5
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([left, np.zeros_like(left)], axis=1), 16_000, format="WAV")
    samples, info = read_audio(buffer.getvalue())
    np.testing.assert_allclose(samples, left / 2, atol=1e-4)
    assert info.notes == ["downmixed from 2 channels"]


def test_the_duration_comes_from_the_header_alone():
    assert audio_seconds(encoded(48_000 * 3, 2, 48_000)) == pytest.approx(3.0)


def test_an_abandoned_decoding_stops_between_blocks():
    with cancellation.watching(lambda: True), pytest.raises(cancellation.Cancelled):
        read_audio(encoded(16_000, 1, 16_000))


def test_a_truncated_wav_is_refused_as_corrupt_not_read_as_a_shorter_clip():
    whole = encoded(8_000, 1, 8_000, "WAV")
    with pytest.raises(AudioError, match=r"^corrupt: truncated, 8,000 bytes .* missing"):
        read_audio(whole[:-8_000])
    assert read_audio(whole)[1].seconds == pytest.approx(1.0)
