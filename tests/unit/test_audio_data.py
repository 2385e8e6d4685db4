"""Reading audio: any file becomes 16 kHz mono float32, bad files are named and skipped, speakers split apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audio_helpers import DIGIT_PATTERN, DIGITS, mp4_header, tone, write

from modelyard.config import FormatOptions, SplitConfig
from modelyard.data import audio
from modelyard.errors import DataError


def test_a_real_8khz_recording_is_resampled_to_16khz_mono_float32():
    samples, info = audio.read_audio(DIGITS / "0_george_0.wav")
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert info.source_rate == 8000 and info.notes == ["resampled from 8000 Hz"]
    assert abs(samples.size / audio.SAMPLE_RATE - info.seconds) < 1e-3


def test_stereo_96khz_is_downmixed_and_resampled_keeping_the_pitch(tmp_path):
    left = tone(1.0, 96000, hz=1000)
    path = write(tmp_path / "s.wav", np.stack([left, left], axis=1), 96000, "PCM_24")
    samples, info = audio.read_audio(path)
    assert info.notes == ["downmixed from 2 channels", "resampled from 96000 Hz"]
    assert samples.size == 16000
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1  # 1 Hz bins over one second


def test_eight_bit_and_clipped_files_are_kept_with_a_note(tmp_path):
    _, info = audio.read_audio(write(tmp_path / "u8.wav", tone(0.3, 8000), 8000, "PCM_U8"))
    assert any(n.startswith("8-bit") for n in info.notes)
    _, info = audio.read_audio(write(tmp_path / "hot.wav", np.clip(tone(0.3, level=3.0), -1, 1)))
    assert any(n.startswith("clipped") for n in info.notes)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (mp4_header(), "video"),
        (b"just some text, not sound" * 20, "unsupported"),
    ],
)
def test_unusable_bytes_raise_an_audio_error_with_the_reason_first(content, reason):
    with pytest.raises(audio.AudioError, match=f"^{reason}"):
        audio.decode_audio(content)


def test_a_file_over_the_limit_is_refused_before_it_is_decoded(tmp_path):
    path = write(tmp_path / "long.flac", np.zeros(16000 * 90, dtype=np.float32), fmt="FLAC")
    with pytest.raises(audio.AudioError, match=r"too long: 90\.0 s"):
        audio.read_audio(path, max_seconds=60)


def test_stats_see_loudness_silence_and_snr():
    quiet = np.zeros(16000, dtype=np.float32)
    quiet[4000:8000] = tone(0.25, level=0.3)
    stats = audio.audio_stats(quiet)
    assert stats["duration"] == 1.0
    assert 0.6 < stats["silence_share"] < 0.8
    assert stats["snr"] > 40
    assert -30 < stats["loudness"] < -10


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for label in ("yes", "no"):
        for i in range(3):
            write(root / label / f"{i}.wav", tone(0.4, hz=300 + 200 * i + (label == "no") * 900))
    (root / "yes" / "empty.wav").write_bytes(b"")
    (root / "yes" / "clip.mp4").write_bytes(mp4_header())
    (root / "no" / "broken.wav").write_bytes((root / "no" / "0.wav").read_bytes()[:30])
    write(root / "no" / "silent.wav", np.zeros(8000, dtype=np.float32))
    write(root / "no" / "long.wav", np.zeros(16000 * 5, dtype=np.float32) + 0.1)
    write(root / "no" / "stereo.wav", np.stack([tone(0.4), tone(0.4)], axis=1), 44100)
    return root


def test_verify_names_every_bad_file_and_says_what_was_done(messy):
    listing = audio.list_folder(messy)
    report = audio.AudioReport()
    kept = audio.verify(listing, messy, report, max_seconds=2.0)
    assert sorted(kept["file"]) == sorted([f"{c}/{i}.wav" for c in ("yes", "no") for i in range(3)] + ["no/stereo.wav"])
    assert report.skipped == {"empty": 1, "video": 1, "unsupported": 1, "silent": 1, "too long": 1}
    text = "\n".join(report.skipped_files)
    for name in ("yes/empty.wav", "yes/clip.mp4", "no/broken.wav", "no/silent.wav", "no/long.wav"):
        assert name in text
    assert "no/stereo.wav: downmixed from 2 channels (kept)" in report.handled_files
    assert set(kept.columns) >= {"sha256", "seconds", "source_rate", "channels", "loudness_db", "notes"}


def test_a_flat_folder_takes_labels_and_speakers_from_the_file_names():
    listing = audio.list_folder(DIGITS, DIGIT_PATTERN)
    assert len(listing) == 120
    assert sorted(listing["speaker"].unique()) == ["george", "jackson", "theo"]
    assert sorted(listing["label"].unique()) == [str(d) for d in range(10)]


def test_a_flat_folder_without_labels_is_a_clear_error(tmp_path):
    write(tmp_path / "a.wav", tone(0.1))
    with pytest.raises(DataError, match="no labelled audio files"):
        audio.list_folder(tmp_path)


def test_a_manifest_resolves_paths_against_its_folder_and_checks_columns(tmp_path):
    write(tmp_path / "clips" / "a.wav", tone(0.1))
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"file": ["clips/a.wav"], "intent": ["stop"], "who": ["ann"]}).to_csv(manifest, index=False)
    frame = audio.list_table(manifest, "file", {"label": "intent", "speaker": "who"}, FormatOptions(), None)
    assert frame.to_dict("records") == [
        {
            "path": str((tmp_path / "clips" / "a.wav").absolute()),
            "file": "clips/a.wav",
            "label": "stop",
            "speaker": "ann",
        }
    ]
    with pytest.raises(DataError, match="speaker"):
        audio.list_table(manifest, "file", {"label": "intent", "speaker": "spk"}, FormatOptions(), None)


def test_speaker_splits_never_share_a_voice_between_train_and_test():
    frame = pd.DataFrame({"speaker": [s for s in "abcdef" for _ in range(10)], "label": ["x"] * 60})
    splits, notes = audio.speaker_splits(frame, SplitConfig(validation=0.2, test=0.2, seed=3))
    voices = {name: set(part["speaker"]) for name, part in splits.items()}
    assert len(voices["test"]) == 1 and len(voices["validation"]) == 1 and len(voices["train"]) == 4
    assert not voices["train"] & voices["test"] and not voices["train"] & voices["validation"]
    assert sum(len(p) for p in splits.values()) == 60
    assert notes[0].startswith("test: speakers")


def test_speaker_splits_hold_out_the_number_of_speakers_nearest_each_share():
    frame = pd.DataFrame({"speaker": [s for s in "abcdef" for _ in range(30)], "label": ["x"] * 180})
    splits, notes = audio.speaker_splits(frame, SplitConfig(validation=0.2, test=0.3, seed=7))
    assert [splits[n]["speaker"].nunique() for n in ("train", "validation", "test")] == [3, 1, 2]
    assert "(60 recordings, 33% of the data)" in notes[0] and "(30 recordings, 17% of the data)" in notes[1]


def test_rows_without_a_speaker_stay_in_train_and_are_counted_in_the_notes():
    frame = pd.DataFrame({"speaker": ["a", "a", "b", "b", "c", "c", None, None], "label": list("xyxyxyxy")})
    splits, notes = audio.speaker_splits(frame, SplitConfig(validation=0.0, test=0.3, seed=1))
    assert splits["train"]["speaker"].isna().sum() == 2 and splits["test"]["speaker"].notna().all()
    assert sum(len(p) for p in splits.values()) == 8
    assert "train: 2 recordings without a speaker kept in train (never held out)" in notes


def test_fixed_test_speakers_are_honoured_and_unknown_ones_refused():
    frame = pd.DataFrame({"speaker": list("aabbcc"), "label": list("xyxyxy")})
    splits, _ = audio.speaker_splits(frame, SplitConfig(validation=0.0, test=0.3), ["c"])
    assert set(splits["test"]["speaker"]) == {"c"} and splits["validation"].empty
    with pytest.raises(DataError, match="unknown speakers"):
        audio.speaker_splits(frame, SplitConfig(), ["zed"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_manifest_keeps_rows_whose_optional_cells_are_blank_and_counts_the_rows_it_drops(tmp_path, suffix):
    rows = pd.DataFrame(
        {"audio": ["a.wav", "b.wav", None, "d.wav"], "label": ["yes", "no", "yes", ""], "who": ["ann", None, "ann", ""]}
    )
    manifest = tmp_path / f"m{suffix}"
    rows.to_csv(manifest, index=False) if suffix == ".csv" else rows.to_json(manifest, orient="records", lines=True)
    warnings: list[str] = []
    columns = {"label": "label", "speaker": "who"}
    frame = audio.list_table(manifest, "audio", columns, FormatOptions(), None, ("label", "speaker"), warnings)
    assert frame["file"].tolist() == ["a.wav", "b.wav", "d.wav"]
    assert frame["speaker"].iloc[0] == "ann" and frame["speaker"].iloc[1:].isna().all()
    assert frame["label"].iloc[:2].tolist() == ["yes", "no"] and pd.isna(frame["label"].iloc[2])
    assert warnings == [f"{manifest}: 1 rows dropped (1 without 'audio')"]


def test_one_speaker_cannot_be_split_by_speaker_and_the_error_names_the_split_and_the_way_out():
    with pytest.raises(DataError, match="only one speaker") as caught:
        audio.speaker_splits(pd.DataFrame({"speaker": ["a", "a"]}), SplitConfig(validation=0.1, test=0.0))
    assert "for the validation split (data.split.validation: 0.1)" in caught.value.message
    assert caught.value.hint.endswith("split by recording: data.speaker_column: null")


def test_a_sample_rate_no_recording_has_is_refused_before_resampling(tmp_path):
    """A 2 KB WAV whose header claims 1,999,999,999 Hz once asked for a 298 GiB filter."""
    import struct

    import soundfile as sf

    path = tmp_path / "odd.wav"
    sf.write(path, np.full(2000, 0.1, np.float32), 8000, subtype="PCM_U8")
    header = bytearray(path.read_bytes())
    header[24:28] = struct.pack("<I", 1_999_999_999)
    path.write_bytes(bytes(header))
    with pytest.raises(audio.AudioError, match="unsupported: a sample rate of 1,999,999,999 Hz"):
        audio.read_audio(path)


@pytest.mark.parametrize("rate", [44_101, 7_919])
def test_an_odd_but_real_rate_is_resampled_with_a_small_filter_keeping_the_pitch(rate):
    seconds = np.arange(rate) / rate
    out = audio.resample(np.sin(2 * np.pi * 1000 * seconds).astype(np.float32), rate)
    assert abs(len(out) - 16_000) <= 2
    spectrum = np.abs(np.fft.rfft(out[:16_000]))
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1
