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


@pytest.mark.parametrize(
    "name",
    [
        "text_classification",
        "multilabel_classification",
        "token_classification",
        "image_classification",
        "audio_classification",
        "forecasting",
        "recommendation",
    ],
)
def test_every_task_that_names_its_validation_metrics_refuses_another_before_training(name):
    from types import SimpleNamespace

    from modelyard.tasks import get_task
    from modelyard.training.callbacks import check_early_stopping

    task = get_task(name)
    assert task.main_metric in task.validation_metrics  # the default metric is always accepted

    def config(metric):
        return SimpleNamespace(train=SimpleNamespace(early_stopping=SimpleNamespace(metric=metric)))

    check_early_stopping(task, config(task.main_metric))
    with pytest.raises(ConfigError, match=r"train\.early_stopping\.metric: validation reports no metric 'f1'"):
        check_early_stopping(task, config("f1"))


def test_validate_refuses_an_early_stopping_metric_text_classification_does_not_report(banking_slice):
    from conftest import write_config

    import modelyard

    path = write_config(banking_slice, "tfidf-linear")
    with pytest.raises(ConfigError, match="no metric 'f1_macro'") as err:
        modelyard.validate(path, ["train.early_stopping.metric=f1_macro"])
    assert "macro_f1" in err.value.hint
