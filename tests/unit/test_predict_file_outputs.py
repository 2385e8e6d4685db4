"""`predict --audio/--image -o FILE` names each row's file, so a skipped file shifts no answer onto another."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from modelyard import api, predict_io
from modelyard.cli import app


def predict_skipping_b(model, paths, top_k, on_skip):
    """A stand-in for the file predictors: b.wav is unusable, each other file is its own label."""
    on_skip(paths[1], "corrupt: not audio")
    kept = [p for p in paths if not p.endswith("b.wav")]
    return kept, [{"label": p[-5], "score": 0.9} for p in kept]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("option", ["--audio", "--image"])
def test_every_output_row_names_its_file_when_a_file_is_skipped(tmp_path, monkeypatch, suffix, option):
    monkeypatch.setattr(api, "load", lambda _: SimpleNamespace(labels=["a", "c", "d"]))
    monkeypatch.setattr(predict_io, "predict_audio", predict_skipping_b)
    monkeypatch.setattr(predict_io, "predict_images", predict_skipping_b)
    files = [str(tmp_path / f"{name}.wav") for name in "abcd"]
    monkeypatch.setattr(predict_io, "audio_files", lambda _: files)
    monkeypatch.setattr(predict_io, "image_files", lambda _: files)
    out = tmp_path / f"out{suffix}"
    result = CliRunner().invoke(app, ["predict", str(tmp_path), option, str(tmp_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    if suffix == ".csv":
        rows = pd.read_csv(out).to_dict("records")
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["input"], row["label"]) for row in rows] == [(files[0], "a"), (files[2], "c"), (files[3], "d")]
