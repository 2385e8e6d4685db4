"""Training callbacks: early stopping on the validation metric the user named."""

from __future__ import annotations

import pytest

from modelyard.errors import ConfigError
from modelyard.training.callbacks import EarlyStopping, TrainerControl, TrainerState


def test_the_first_evaluation_refuses_an_early_stopping_metric_validation_does_not_report():
    stopper = EarlyStopping("recall@50", greater_is_better=True, patience=2, named=True)
    with pytest.raises(ConfigError, match=r"no metric 'recall@50'") as err:
        stopper.on_evaluate(TrainerState(), TrainerControl(), {"recall@10": 0.3, "epoch": 1, "train_loss": 0.5})
    assert err.value.hint == "choose one of recall@10"
    stopper.on_evaluate(TrainerState(), TrainerControl(), {"epoch": 1, "train_loss": 0.5})  # no validation split


def test_a_default_metric_missing_from_validation_leaves_early_stopping_idle():
    control = TrainerControl()
    EarlyStopping("loss", greater_is_better=False, patience=1).on_evaluate(TrainerState(), control, {"accuracy": 0.9})
    assert control.should_stop is False
