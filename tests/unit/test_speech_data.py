"""Reading transcribed audio: LibriSpeech-style folders, manifests with bad rows, the digit-string generator, and
the character alphabet of English and Chinese transcripts."""

from __future__ import annotations

import pandas as pd
import pytest
import soundfile as sf
from speech_helpers import RECORDINGS, generator

from modelyard.config import FormatOptions
from modelyard.data.audio import AudioReport
from modelyard.data.transcripts import list_librispeech, read_transcribed
from modelyard.errors import ConfigError, DataError
from modelyard.models.ctc_decoder import build_alphabet, clean_transcript
from modelyard.tasks import config_from_dict, get_task


def test_a_librispeech_style_folder_gives_paths_transcripts_and_speakers(tmp_path):
    chapter = tmp_path / "84" / "121123"
    chapter.mkdir(parents=True)
    samples, rate = sf.read(RECORDINGS / "3_george_0.wav")
    sf.write(chapter / "84-121123-0000.flac", samples, rate)
    sf.write(chapter / "84-121123-0001.flac", samples, rate)
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 THREE\n84-121123-0001 THREE AGAIN\n\n")
    frame = list_librispeech(tmp_path)
    assert list(frame["text"]) == ["THREE", "THREE AGAIN"] and set(frame["speaker"]) == {"84"}
    assert frame["file"][0] == "84/121123/84-121123-0000.flac"


def test_rows_without_transcript_or_with_a_missing_file_are_dropped_and_named(tmp_path):
    samples, rate = sf.read(RECORDINGS / "5_jackson_1.wav")
    sf.write(tmp_path / "a.wav", samples, rate)
    (tmp_path / "m.csv").write_text("audio_path,text\na.wav,five\na.wav,\nmissing.wav,five\n")
    report = AudioReport()
    frame, warnings = read_transcribed(
        str(tmp_path / "m.csv"), "audio_path", "text", "speaker", FormatOptions(), None, 30.0, report
    )
    assert list(frame["text"]) == ["five"] and frame["seconds"][0] > 0.2
    assert report.skipped["missing"] == 1 and "missing.wav: missing" in report.skipped_files[0]
    assert warnings == [f"{tmp_path / 'm.csv'}: 1 rows without a transcript dropped (first: a.wav)"]


def test_the_digit_string_generator_is_deterministic_by_seed(tmp_path):
    make = generator().generate
    first = make(RECORDINGS, tmp_path / "a", 3, ["theo"], seed=7).read_text()
    again = make(RECORDINGS, tmp_path / "b", 3, ["theo"], seed=7).read_text()
    other = make(RECORDINGS, tmp_path / "c", 3, ["theo"], seed=8).read_text()
    assert first == again != other
    assert (tmp_path / "a" / "00000_theo.wav").read_bytes() == (tmp_path / "b" / "00000_theo.wav").read_bytes()
    row = first.splitlines()[1].split(",")
    assert 3 <= len(row[4]) <= 10 and row[1].split() and row[2] == "theo"


def test_english_transcripts_give_letters_apostrophe_and_space_chinese_give_characters():
    english = build_alphabet(["Don't stop", "Metformin 500"])
    assert english[0] == "<blank>" and {"'", " ", "d", "m"} <= set(english) and "D" not in english
    chinese = build_alphabet(["阿莫西林 胶囊", "布洛芬"])
    assert {"阿", "莫", "芬"} <= set(chinese)
    assert clean_transcript("  Hello   World’s ") == "hello world's"


def _speech_config(tmp_path, **data):
    rows = ["audio_path,text,speaker"]
    for name in sorted(p.name for p in RECORDINGS.glob("[0-4]_*_[0-1].wav")):  # 5 digits x 3 voices x 2 takes
        rows.append(f"{RECORDINGS / name},{['zero', 'one', 'two', 'three', 'four'][int(name[0])]},{name.split('_')[1]}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    raw = {"name": "s", "task": "speech_recognition", "data": {"train": str(tmp_path / "m.csv"), **data}}
    return config_from_dict(raw, "test")


def test_test_speakers_are_held_out_even_when_the_split_shares_are_zero(tmp_path):
    config = _speech_config(tmp_path, test_speakers=["theo"], split={"validation": 0.0, "test": 0.0})
    splits = get_task("speech_recognition").prepare(config).splits
    assert set(splits["test"]["speaker"]) == {"theo"} and "theo" not in set(splits["train"]["speaker"])


def test_test_speakers_beside_a_given_test_file_are_refused(tmp_path):
    config = _speech_config(tmp_path, test_speakers=["theo"], test=str(tmp_path / "m.csv"))
    with pytest.raises(ConfigError, match=r"data\.test_speakers and data\.test both name the test data"):
        get_task("speech_recognition").prepare(config)


@pytest.mark.parametrize("task", ["speech_recognition", "audio_classification"])
def test_predict_input_reads_a_manifests_audio_column_relative_to_its_folder_not_its_transcripts(task, tmp_path):
    config = config_from_dict({"name": "digits", "task": task, "data": {"train": "m.csv", "audio_column": "clip"}}, "x")
    frame = pd.DataFrame({"clip": ["a.wav", "/abs/b.wav"], "text": ["one", "two"], "speaker": ["x", "y"]})
    frame.attrs["source"] = str(tmp_path / "m.csv")
    assert get_task(task).inputs_from_frame(frame, config) == [str(tmp_path / "a.wav"), "/abs/b.wav"]
    with pytest.raises(DataError, match=r"no column 'clip' \(data.audio_column\).*it has: text, speaker"):
        get_task(task).inputs_from_frame(frame[["text", "speaker"]], config)
