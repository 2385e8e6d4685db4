"""`validate` refuses a `train.early_stopping.metric` the task's validation never reports, naming those it does,
for every task that trains with early stopping (its `validation_metrics`)."""

from types import SimpleNamespace

import pytest

from modelyard.errors import ConfigError
from modelyard.tasks import get_task
from modelyard.training.callbacks import check_early_stopping

DECLARED = {
    "multimodal_classification": "macro_f1",
    "object_detection": "map50_95",
    "speech_recognition": "cer",
    "text_generation": "perplexity",
}


def _config(metric: str) -> SimpleNamespace:
    return SimpleNamespace(train=SimpleNamespace(early_stopping=SimpleNamespace(metric=metric)))


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_a_misspelt_metric_is_refused_with_the_metrics_validation_reports(name):
    task = get_task(name)
    with pytest.raises(ConfigError, match="validation reports no metric 'acuracy'") as err:
        check_early_stopping(task, _config("acuracy"))
    assert task.main_metric in err.value.hint and DECLARED[name] in err.value.hint


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_the_main_metric_and_the_starter_configs_metric_pass(name):
    task = get_task(name)
    check_early_stopping(task, _config(task.main_metric))
    check_early_stopping(task, _config(DECLARED[name]))


@pytest.mark.parametrize("name,metric", [("tabular_classification", "roc_auc"), ("tabular_regression", "rmse")])
def test_a_table_model_refuses_a_metric_it_would_ignore_and_accepts_its_own(name, metric):
    task = get_task(name)
    with pytest.raises(ConfigError, match=f"stop training by their own validation metric \\({metric}\\)") as err:
        check_early_stopping(task, _config("pr_auc"))
    assert "leave train.early_stopping.metric unset" in err.value.hint
    check_early_stopping(task, _config(metric))
    check_early_stopping(task, SimpleNamespace(train=SimpleNamespace(early_stopping=None)))
