"""A training whose output goes to a log (not a terminal) reports its progress as it goes, not only at the end."""

from __future__ import annotations

import re

from conftest import write_config

import modelyard


def test_training_into_a_pipe_logs_step_lines_as_it_goes(banking_slice, tmp_path, capsys):
    config = write_config(banking_slice, "scratch-transformer", batch_size=8, epochs=1)
    overrides = ["data.max_rows=96", "model.hidden_size=32", "model.layers=1", "model.heads=2", "model.max_length=16"]
    modelyard.train(config, output=tmp_path / "a", overrides=overrides)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training: step")]
    assert len(lines) >= 5, lines
    pattern = r"loss \d+\.\d{4}, [\d.]+ samples/s, elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d$"
    assert all(re.search(pattern, line) for line in lines), lines
