"""The starter configs `modelyard init` writes for forecasting and recommendation validate as they are."""

from __future__ import annotations

import pytest
import yaml

from modelyard.tasks import config_from_dict, get_task


@pytest.mark.parametrize("task", ["forecasting", "recommendation"])
def test_the_starter_config_of_the_task_is_a_valid_config(task):
    config = config_from_dict(yaml.safe_load(get_task(task).starter_config()))
    assert config.task == task and config.train.early_stopping.metric == get_task(task).main_metric
