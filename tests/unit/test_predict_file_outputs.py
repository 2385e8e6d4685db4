"""`predict --audio/--image -o FILE` names each row's file, so a skipped file shifts no answer onto another."""

from __future__ import annotations

import json
from pathlib import Path
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


HISTORY = [100.123456789012345 + 0.1 * i + 1e-12 * i for i in range(1200)]  # long, with more than 8 decimals


def forecast_requests(tmp_path) -> Path:
    path = tmp_path / "req.jsonl"
    rows = [{"history": HISTORY, "horizon": 2}, {"history": HISTORY[:30], "horizon": 3}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def histories(path: Path) -> list[list[float]]:
    """The requests `predict --input` reads back from an output file, as a forecaster reads them."""
    from modelyard.tasks.forecasting import ForecastingTask

    frame, _, _ = predict_io._read_table(path, predict_io.FormatOptions())
    return [request.history for request in ForecastingTask().inputs_from_frame(frame, None)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_list_input_column_comes_back_exact_and_readable_as_input_again(tmp_path, suffix):
    _, values, _ = predict_io._read_table(forecast_requests(tmp_path), predict_io.FormatOptions())
    out = tmp_path / f"out{suffix}"
    predict_io.write_predictions(out, values, [{"forecast": [1.5, 2.5]}, {"forecast": [1.0, 2.0, 3.0]}])
    assert histories(out) == [HISTORY, HISTORY[:30]]  # numpy's printed text was cut to 84 characters with "..."
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert pa.types.is_list(pq.read_schema(out).field("history").type)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_streamed_output_keeps_a_list_input_column_exact_and_readable_as_input_again(tmp_path, suffix):
    from modelyard.batch.journal import Journal
    from modelyard.batch.stream import input_chunks

    chunks, _ = input_chunks(forecast_requests(tmp_path), predict_io.FormatOptions(), chunk_rows=1)
    out = tmp_path / f"out{suffix}"
    with Journal(out, {"input": {"path": "req.jsonl"}, "bundle": "b", "output": suffix}, chunk_rows=1) as journal:
        for table, _ in chunks:
            journal.add(table.append_column("forecast", pa_strings(["[1.5]"])), {})
        journal.assemble()
    assert histories(out) == [HISTORY, HISTORY[:30]]


def pa_strings(values: list[str]):
    import pyarrow as pa

    return pa.array(values)
