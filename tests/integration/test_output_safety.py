"""`train --output DIR` never replaces a folder that holds the user's own files (`--output .` once deleted them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import write_config

import modelyard
from modelyard.errors import UserError


def _cli(monkeypatch, *args: str) -> int:
    from modelyard import cli

    monkeypatch.setattr(sys, "argv", ["modelyard", "-q", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code or 0


def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("my own work")
    return folder


def test_train_refuses_a_folder_of_user_files_before_reading_any_data(banking_slice, tmp_path):
    folder = _user_folder(tmp_path)
    config = write_config(tmp_path, "tfidf-linear")  # its data paths do not exist here: the output is checked first
    with pytest.raises(UserError, match="exists and is not a bundle"):
        modelyard.train(config, output=folder, quiet=True)
    assert (folder / "notes.txt").read_text() == "my own work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "tfidf-linear.yaml"]


def test_cli_train_with_output_dot_exits_1_and_keeps_the_users_files(banking_slice, tmp_path, monkeypatch, capsys):
    folder = _user_folder(tmp_path)
    config = write_config(banking_slice, "tfidf-linear")
    monkeypatch.chdir(folder)
    assert _cli(monkeypatch, "train", str(config), "--output", ".") == 1
    err = capsys.readouterr().err
    assert "exists and is not a bundle" in err and "Traceback" not in err
    assert (folder / "notes.txt").read_text() == "my own work"


def test_a_file_as_output_is_refused(banking_slice, tmp_path):
    target = tmp_path / "model"
    target.write_text("a file")
    with pytest.raises(UserError, match="exists and is not a bundle"):
        modelyard.train(write_config(banking_slice, "tfidf-linear"), output=target, quiet=True)
    assert target.read_text() == "a file"


def test_an_empty_folder_and_an_existing_bundle_are_accepted(banking_slice, tmp_path):
    config = write_config(banking_slice, "tfidf-linear")
    (tmp_path / "empty").mkdir()
    for output in (tmp_path / "empty", tmp_path / "empty"):  # the second time it holds a bundle
        assert modelyard.train(config, output=output, quiet=True).path == output.resolve()


def test_an_unfinished_run_with_checkpoints_is_accepted(banking_slice, tmp_path):
    output = tmp_path / "run"
    (output / "checkpoints" / "latest").mkdir(parents=True)
    model = modelyard.train(write_config(banking_slice, "tfidf-linear"), output=output, quiet=True)
    assert model.path == output.resolve()


def test_retrain_refuses_an_output_folder_of_user_files_before_loading_the_champion(banking_slice, tmp_path):
    from modelyard.monitoring.retrain import retrain

    folder = _user_folder(tmp_path)
    with pytest.raises(UserError, match="exists and is not a bundle"):
        retrain(write_config(banking_slice, "tfidf-linear"), str(tmp_path / "no-champion"), output=folder)
    assert (folder / "notes.txt").read_text() == "my own work"
