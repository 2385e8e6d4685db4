"""Audio classification end to end on real recordings (the committed spoken-digits slice): a tiny training run
held out by speaker, predict from files and requests, bad audio as clear errors, ONNX parity, no raw audio logged."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from audio_helpers import DIGIT_PATTERN, DIGITS, mp4_header, tone, write
from serving_helpers import serving
from typer.testing import CliRunner

import modelyard
from modelyard.api import validate
from modelyard.cli import app
from modelyard.monitoring.prediction_log import db_path


def tiny_config(folder: Path, **data) -> Path:
    config = {
        "name": "digits-tiny",
        "task": "audio_classification",
        "data": {
            "train": str(DIGITS),
            "filename_pattern": DIGIT_PATTERN,
            "test_speakers": ["theo"],
            "split": {"validation": 0.0},
            **data,
        },
        "model": {"backbone": "cnn", "widths": [8, 16], "n_mels": 32, "clip_seconds": 0.6},
        "train": {"epochs": 2, "batch_size": 16, "learning_rate": 3e-3},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("digits")
    return modelyard.train(tiny_config(folder), output=folder / "bundle", quiet=True, track=False)


def wav_bytes(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.mark.slow
def test_training_holds_out_whole_speakers_and_beside_the_mfcc_baseline(digits_bundle):
    path = digits_bundle.path
    report = json.loads((path / "data_report.json").read_text())
    assert report["splits"]["test"]["speakers"] == {"theo": 40}
    assert set(report["splits"]["train"]["speakers"]) == {"george", "jackson"}
    assert report["durations"]["median"] > 0.2 and report["sample_rates"] == {"8000": 80}
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["test"]["samples"] == 40
    assert 0.0 <= metrics["baselines"]["mfcc_logreg"]["test"]["accuracy"] <= 1.0
    spec = json.loads((path / "audio_model.json").read_text())
    assert spec["frontend"]["n_mels"] == 32 and spec["clip_samples"] == 9600
    assert spec["frontend"]["f_max"] == 4000.0  # 8 kHz sources: bands above 4 kHz are never fed to the model
    assert set(json.loads((path / "reference.json").read_text())["features"]) == {
        "duration",
        "loudness",
        "snr",
        "silence_share",
    }


@pytest.mark.slow
def test_paths_bytes_base64_and_a_reloaded_bundle_agree(digits_bundle):
    file = DIGITS / "5_theo_2.wav"
    encoded = base64.b64encode(file.read_bytes()).decode()
    from_path = digits_bundle.predict([str(file)], top_k=3)[0]
    assert digits_bundle.predict([encoded], top_k=3)[0]["label"] == from_path["label"]
    again = modelyard.load(digits_bundle.path).predict([str(file)], top_k=3)[0]
    assert again["label"] == from_path["label"]
    assert again["score"] == pytest.approx(from_path["score"], abs=1e-5)


@pytest.mark.slow
def test_predict_audio_skips_bad_files_by_name_and_predicts_the_rest(digits_bundle, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.wav").write_bytes((DIGITS / "1_george_0.wav").read_bytes())
    write(folder / "stereo96k.wav", np.stack([tone(0.5, 96000)] * 2, axis=1), 96000, "PCM_24")
    write(folder / "eight_bit.wav", tone(0.5, 8000), 8000, "PCM_U8")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "movie.mp4").write_bytes(mp4_header())
    (folder / "noise.flac").write_bytes(b"\x00" * 100)
    result = CliRunner().invoke(app, ["predict", str(digits_bundle.path), "--audio", str(folder), "--audio",
                                      str(folder / "movie.mp4")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "empty.wav: empty" in result.output and "movie.mp4: video" in result.output
    assert "noise.flac: unsupported" in result.output
    start = result.output.index("[")
    predicted = json.loads(result.output[start:])
    assert [Path(p["input"]).name for p in predicted] == ["eight_bit.wav", "good.wav", "stereo96k.wav"]
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_the_server_answers_base64_and_uploads_and_refuses_bad_audio_with_422(digits_bundle, tmp_path):
    good = (DIGITS / "2_jackson_1.wav").read_bytes()
    long = wav_bytes(np.zeros(16000 * 61, dtype=np.float32) + 0.01)
    with serving(digits_bundle.path, log_predictions=True) as client:
        info = client.get("/v1/model").json()
        assert info["input_schema"]["contentMediaType"] == "audio/*" and "upload" in info["capabilities"]
        answer = client.post("/v1/predict", json={"inputs": [base64.b64encode(good).decode()], "top_k": 2})
        assert answer.status_code == 200 and len(answer.json()["predictions"][0]["probabilities"]) == 2
        upload = client.post("/v1/predict/upload", files={"files": ("a.wav", good, "audio/wav")})
        assert upload.json()["predictions"][0]["label"] == answer.json()["predictions"][0]["label"]
        for bad, reason in [
            (b"", "empty"),
            (mp4_header(), "video"),
            (b"RIFF1234WAVEfmt garbage", "unsupported"),
            (long, "too long"),
        ]:
            response = client.post("/v1/predict", json={"inputs": [base64.b64encode(bad).decode()]})
            assert response.status_code == 422, response.text
            assert reason in response.json()["error"]["message"]
        response = client.post("/v1/predict", json={"inputs": ["not base64 at all!"]})
        assert response.status_code == 422
        page = client.get("/").text
        assert 'id="audio-preview"' in page
    with sqlite3.connect(db_path()) as conn:
        logged = conn.execute("SELECT input FROM predictions").fetchall()
    assert logged, "the successful requests were logged"
    for (text,) in logged:
        row = json.loads(text)
        assert set(row) == {"duration", "loudness", "snr", "silence_share"}  # numbers, never the recording


@pytest.mark.slow
def test_onnx_export_keeps_the_predictions(digits_bundle, tmp_path):
    from modelyard.export.exporter import export

    result = export(digits_bundle.path, output=tmp_path / "onnx", latency_samples=5)
    assert result.passed, result.report
    exported = modelyard.load(result.path)
    file = str(DIGITS / "9_george_3.wav")
    assert exported.predict([file])[0]["label"] == digits_bundle.predict([file])[0]["label"]
    assert exported.predict([file])[0]["score"] == pytest.approx(digits_bundle.predict([file])[0]["score"], abs=1e-3)


@pytest.mark.slow
def test_validate_names_bad_files_and_keeps_going(tmp_path):
    folder = tmp_path / "data"
    for name in ("1_ann_0", "1_ann_1", "2_ann_0", "2_bob_0", "1_bob_0", "2_bob_1"):
        write(folder / f"{name}.wav", tone(0.3, hz=300 + 100 * int(name[0])))
    (folder / "1_ann_9.wav").write_bytes(b"")
    (folder / "2_bob_9.mp4").write_bytes(mp4_header())
    prepared = validate(tiny_config(tmp_path, train=str(folder), test_speakers=["bob"]))
    skipped = "\n".join(prepared.report["audio"]["skipped_files"])
    assert "1_ann_9.wav: empty" in skipped and "2_bob_9.mp4: video" in skipped
    assert prepared.report["audio"]["kept"] == 6
    assert set(prepared.splits["test"]["speaker"]) == {"bob"} and set(prepared.splits["train"]["speaker"]) == {"ann"}


@pytest.mark.slow
def test_the_report_shows_the_classifier_sections_with_files_by_name(digits_bundle, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(digits_bundle.path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for title in ("Per-class results", "Confusion matrix", "Most confident mistakes"):
        assert title in html
    assert "could not be computed" not in html


def test_the_starter_config_validates_as_written(tmp_path):
    from modelyard.tasks import get_task, load_config

    path = tmp_path / "audio.yaml"
    path.write_text(get_task("audio_classification").starter_config())
    config = load_config(path)
    assert config.model.backbone == "auto" and config.model.max_seconds == 60


@pytest.mark.slow
def test_monitor_compares_logged_audio_numbers_with_the_training_data(digits_bundle):
    from modelyard.monitoring.monitor import monitor

    files = sorted(DIGITS.glob("*_theo_*.wav"))[:32]
    inputs = [base64.b64encode(f.read_bytes()).decode() for f in files]
    with serving(digits_bundle.path, log_predictions=True) as client:
        assert client.post("/v1/predict", json={"inputs": inputs}).status_code == 200
    report = monitor(str(digits_bundle.path))
    per_feature = report["drift"]["features"]["per_feature"]
    assert set(per_feature) == {"duration", "loudness", "snr", "silence_share"}
    assert all(test["n_window"] >= 32 for test in per_feature.values())


def test_a_given_test_folder_carves_no_test_share_so_every_training_speaker_is_kept(tmp_path):
    write(tmp_path / "test" / "1_zoe_0.wav", tone(0.4, hz=400))
    write(tmp_path / "test" / "2_zoe_0.wav", tone(0.4, hz=500))
    prepared = validate(
        tiny_config(tmp_path, test=str(tmp_path / "test"), test_speakers=None, split={"validation": 0.0, "test": 0.3})
    )
    assert sum(len(frame) for frame in prepared.splits.values()) == prepared.report["audio"]["kept"] == 122
    assert set(prepared.splits["train"]["speaker"]) == {"george", "jackson", "theo"}
    assert set(prepared.splits["test"]["speaker"]) == {"zoe"}
    assert "test: the given test data (2 recordings), nothing carved from train" in prepared.report["split_notes"]


def test_test_speakers_beside_a_given_test_folder_are_refused_as_ambiguous(tmp_path):
    from modelyard.errors import ConfigError

    write(tmp_path / "test" / "1_zoe_0.wav", tone(0.4, hz=400))
    with pytest.raises(ConfigError, match=r"data\.test_speakers and a given test split"):
        validate(tiny_config(tmp_path, test=str(tmp_path / "test")))


def test_test_speakers_are_held_out_even_when_both_shares_are_zero(tmp_path):
    prepared = validate(tiny_config(tmp_path, split={"validation": 0.0, "test": 0.0}))
    assert set(prepared.splits["test"]["speaker"]) == {"theo"} and "theo" not in set(
        prepared.splits["train"]["speaker"]
    )


def test_manifest_rows_without_a_speaker_train_and_rows_without_a_label_are_dropped_by_count(tmp_path):
    files = sorted(DIGITS.glob("*.wav"))
    rows = pd.DataFrame(
        {
            "audio": [str(f) for f in files],
            "label": [None if i == 5 else f.name[0] for i, f in enumerate(files)],
            "speaker": [None if i % 10 == 0 else f.name.split("_")[1] for i, f in enumerate(files)],
        }
    )
    rows.to_json(tmp_path / "list.jsonl", orient="records", lines=True)
    prepared = validate(tiny_config(tmp_path, train=str(tmp_path / "list.jsonl"), speaker_column="speaker"))
    assert sum(len(frame) for frame in prepared.splits.values()) == 119
    assert prepared.splits["train"]["speaker"].isna().sum() == 12 and set(prepared.splits["test"]["speaker"]) == {
        "theo"
    }
    assert f"{tmp_path / 'list.jsonl'}: 1 rows without a 'label' dropped (first: {files[5]})" in prepared.warnings
    assert "12 training recordings name no speaker: kept in train, never held out" in prepared.warnings


def test_a_missing_noise_folder_is_a_clear_error(tmp_path):
    from modelyard.errors import DataError

    with pytest.raises(DataError, match=r"data\.noise: no such folder"):
        validate(tiny_config(tmp_path, noise=str(tmp_path / "nowhere")))


def digits_listing(path: Path, speakers: bool = False) -> Path:
    """A CSV of the committed digits: audio path and label (and the speaker when asked)."""
    files = sorted(DIGITS.glob("*.wav"))
    rows = {"audio": [str(f) for f in files], "label": [f.name[0] for f in files]}
    if speakers:
        rows["speaker"] = [f.name.split("_")[1] for f in files]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_list_of_paths_and_labels_validates_without_a_speaker_column(tmp_path, suffix):
    listing = digits_listing(tmp_path / "list.csv")
    if suffix == ".jsonl":
        listing = tmp_path / "list.jsonl"
        pd.read_csv(tmp_path / "list.csv").to_json(listing, orient="records", lines=True)
    config = tiny_config(tmp_path, train=str(listing), filename_pattern=None, test_speakers=None, speaker_column=None)
    prepared = validate(config)
    assert sum(len(frame) for frame in prepared.splits.values()) == 120
    assert "speaker" not in prepared.splits["train"] and prepared.report["speakers"] is None


@pytest.mark.slow
def test_evaluate_scores_a_csv_on_a_bundle_trained_without_a_speaker_column(digits_bundle, tmp_path):
    listing = digits_listing(tmp_path / "list.csv", speakers=True)
    result = CliRunner().invoke(app, ["evaluate", str(digits_bundle.path), "--data", str(listing)])
    assert result.exit_code == 0, result.output
    assert digits_bundle.evaluate(listing)["samples"] == 120


@pytest.mark.slow
def test_evaluate_scores_every_split_subfolder_of_an_audio_folder_not_its_train_folder_alone(digits_bundle, tmp_path):
    files = sorted(DIGITS.glob("*.wav"))
    for split, part in (("train", files[::2]), ("test", files[1::2])):
        (tmp_path / split).mkdir()
        for f in part:
            shutil.copy(f, tmp_path / split / f.name)  # a link out of the data folder is skipped, as training skips it
    result = digits_bundle.evaluate(tmp_path)
    assert result["samples"] == len(files)
    assert f"train ({len(files[::2])}), test ({len(files[1::2])})" in " ".join(result["notes"])
