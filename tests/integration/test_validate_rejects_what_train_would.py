"""`modelyard validate` rejects (exit 1, one clear message) everything `train` would reject, before any training:
unknown backbones, folders that are not models, models of the wrong kind, missing columns and files, bad types."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_config


def validate(monkeypatch, capsys, config, *args: str) -> tuple[int, str]:
    from modelyard import cli

    monkeypatch.setattr(sys, "argv", ["modelyard", "validate", str(config), *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code or 0, capsys.readouterr().err


def test_an_unknown_text_backbone_is_rejected(banking_slice, monkeypatch, capsys):
    code, err = validate(monkeypatch, capsys, write_config(banking_slice, "no-such-model"))
    assert code == 1 and "unknown backbone 'no-such-model'" in err and " ok" not in err


def test_a_local_folder_without_a_model_is_rejected_naming_it(banking_slice, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"0")
    raw = yaml.safe_load(write_config(banking_slice, "tfidf-linear").read_text())
    raw["data"].update(train=str(banking_slice / "train.csv"), test=str(banking_slice / "test.csv"))
    raw["model"]["backbone"] = str(folder)
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, err = validate(monkeypatch, capsys, config)
    assert code == 1 and f"{folder}" in err and "config.json" in err


def test_a_bundled_model_of_another_kind_is_rejected(banking_slice, monkeypatch, capsys):
    code, err = validate(monkeypatch, capsys, write_config(banking_slice, "smollm2-135m"))
    assert code == 1 and "smollm2-135m" in err and "text_classification" in err


def test_an_unknown_generation_backbone_is_rejected(tmp_path, monkeypatch, capsys):
    (tmp_path / "corpus.txt").write_text("To be, or not to be, that is the question.\n" * 200)
    config = tmp_path / "gen.yaml"
    config.write_text(
        yaml.safe_dump(
            {"name": "g", "task": "text_generation", "data": {"train": "corpus.txt"}, "model": {"backbone": "gpt-9"}}
        )
    )
    code, err = validate(monkeypatch, capsys, config)
    assert code == 1 and "unknown backbone 'gpt-9'" in err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.label_column=intent", "intent"),
        ("data.train=nowhere.csv", "nowhere.csv"),
        ("train.epochs=many", "train.epochs"),
    ],
)
def test_missing_columns_files_and_bad_types_are_rejected(banking_slice, monkeypatch, capsys, override, expected):
    code, err = validate(monkeypatch, capsys, write_config(banking_slice, "tfidf-linear"), "--set", override)
    assert code == 1 and expected in err and "Traceback" not in err


def test_a_usable_config_still_validates(banking_slice, monkeypatch, capsys):
    code, err = validate(monkeypatch, capsys, write_config(banking_slice, "tfidf-linear"))
    assert code == 0 and "ok" in err


def test_an_unknown_speech_backbone_is_rejected_before_any_audio_is_read(tmp_path, monkeypatch, capsys):
    from speech_helpers import speech_config

    manifest = tmp_path / "train.csv"
    manifest.write_text("audio_path,text\nmissing.wav,one two\n")
    code, err = validate(monkeypatch, capsys, speech_config(tmp_path, {"train": manifest}, backbone="whisper-huge"))
    assert code == 1 and "unknown backbone 'whisper-huge'" in err and "ctc-lstm" in err


def test_label_noise_on_a_task_without_a_label_audit_is_rejected(monkeypatch, capsys):
    config = Path(__file__).resolve().parents[2] / "examples" / "credit_scoring.yaml"
    code, err = validate(monkeypatch, capsys, config, "--set", "data.label_noise.action=drop")
    assert code == 1 and "data.label_noise" in err and "tabular_classification" in err and "Traceback" not in err
