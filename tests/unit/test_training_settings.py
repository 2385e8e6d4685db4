"""The line `train` prints before its first step: the values it runs with, the tuned defaults marked."""

from __future__ import annotations

from modelyard.config import TrainConfig
from modelyard.training.loop import resolve_train_config, settings_line


def test_the_settings_line_shows_what_training_runs_with_and_marks_the_tuned_defaults():
    asked = TrainConfig(learning_rate=5e-5)
    resolved = resolve_train_config(asked, {"epochs": 2, "batch_size": 32, "learning_rate": 1e-4})
    line = settings_line(asked, resolved, "bf16")
    assert line.startswith("training with epochs 2 (default), batch_size 32 (default), learning_rate 5e-05, ")
    assert "max_steps" not in line and line.endswith(", precision bf16")
