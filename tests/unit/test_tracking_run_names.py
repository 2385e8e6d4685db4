"""Runs in the MLflow UI carry names a user can tell apart, whatever seed training set."""

from __future__ import annotations

import random
import re
from types import SimpleNamespace

from modelyard.tracking import store
from modelyard.tracking.callback import TrackingCallback
from modelyard.training.callbacks import TrainerControl, TrainerState


def test_a_train_run_is_named_after_its_config_and_start_time_not_a_seeded_random_name():
    random.seed(42)  # what training does before the run opens: MLflow's random names then repeat
    warnings: list[str] = []
    tracker = TrackingCallback(warn=warnings.append)
    config = SimpleNamespace(name="intents", task="text_classification", model=SimpleNamespace(backbone="x"))
    tracker.on_train_begin(TrainerState(), TrainerControl(), config)
    assert warnings == []
    run = store.client().get_run(tracker.run_id)
    assert re.fullmatch(r"intents-\d{8}-\d{6}", run.info.run_name)
