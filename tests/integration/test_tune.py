"""Hyper-parameter search: trials run, the study is stored, the best config is written and trains."""

import optuna
import pytest
import yaml
from conftest import write_config

from modelyard.tasks import load_config
from modelyard.tuning import tune


def test_a_search_stores_its_study_and_writes_a_best_config_that_loads(banking_slice, tmp_path):
    config = write_config(banking_slice, "scratch-transformer")
    raw = yaml.safe_load(config.read_text())
    raw["model"].update(hidden_size=32, layers=1, heads=2, vocab_size=500)
    raw["train"].update(batch_size=32, early_stopping=None)
    raw["tune"] = {
        "params": {
            "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "model.dropout": {"choices": [0.0, 0.1]},
        }
    }
    config.write_text(yaml.safe_dump(raw))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = tune(config, trials=3, storage=storage, output=tmp_path / "best.yaml")
    assert result.trials == 3
    study = optuna.load_study(study_name=result.study, storage=storage)
    assert len(study.trials) == 3 and study.best_value == result.best_value
    best = load_config(tmp_path / "best.yaml")
    assert best.train.learning_rate == result.best_params["train.learning_rate"]
    assert best.tune is None
    again = tune(config, trials=1, storage=storage, output=tmp_path / "best.yaml")
    assert again.trials == 4  # a second worker joins the same study


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"train.learning_rate": {"low": 0.1, "high": 0.01}}, "low 0.1 is above high 0.01"),
        ({"train.learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "a log scale needs low > 0"),
        ({"train.epochs": {"choices": []}}, "at least 1 item"),
        ({"train.nope": {"low": 1, "high": 2}}, r"tune.params.train.nope = 1"),
        ({"train.epochs": {"choices": [1, -3]}}, r"tune.params.train.epochs = -3"),
    ],
)
def test_validate_refuses_a_search_tune_could_not_run(banking_slice, params, said):
    from modelyard import api
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "tfidf-linear")
    raw = yaml.safe_load(config.read_text())
    raw["tune"] = {"params": params}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=said):
        api.validate(config)
