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


@pytest.mark.parametrize(
    ("params", "tune_extra", "said"),
    [
        ({"data.split.seed": {"choices": [1, 2]}}, {}, "data keys cannot be searched"),
        ({"train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}}, {}, "not both"),
        ({"train.epochs": {"low": 1, "high": 3, "step": 0.5}}, {}, r"train.epochs = 1.5: .*valid integer"),
        ({"train.epochs": {"choices": [1]}}, {"metric": "f1_score"}, "(?s)no metric 'f1_score'.*macro_f1"),
    ],
)
def test_validate_refuses_tune_settings_no_trial_could_use(banking_slice, params, tune_extra, said):
    from modelyard import api
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "tfidf-linear")
    raw = yaml.safe_load(config.read_text())
    raw["tune"] = {"params": params, **tune_extra}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=said):
        api.validate(config)


def test_validate_refuses_a_search_without_a_validation_split(banking_slice):
    from modelyard import api
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "tfidf-linear")
    raw = yaml.safe_load(config.read_text())
    raw["data"]["split"] = {"validation": 0.0}
    raw["tune"] = {"params": {"train.epochs": {"choices": [1]}}}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="validation split is empty"):
        api.validate(config)


def test_a_searched_value_the_data_checks_refuse_is_refused_before_any_trial(banking_slice, tmp_path):
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "tfidf-linear")
    raw = yaml.safe_load(config.read_text())
    raw["tune"] = {"params": {"model.domain_pretraining": {"choices": [None, {"steps": 2}]}}}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"model.domain_pretraining = .*nothing to pretrain"):
        tune(config, trials=1, storage=f"sqlite:///{tmp_path / 'study.db'}", output=tmp_path / "best.yaml")
    assert not (tmp_path / "best.yaml").exists()


def test_a_study_name_reused_with_another_metric_or_search_is_refused(banking_slice, tmp_path):
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "tfidf-linear")
    raw = yaml.safe_load(config.read_text())
    raw["tune"] = {"params": {"train.epochs": {"choices": [1]}}}
    config.write_text(yaml.safe_dump(raw))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tune(config, trials=1, storage=storage, study_name="shared", output=tmp_path / "best.yaml")
    raw["tune"]["metric"] = "accuracy"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="ranks by macro_f1 and this config ranks by accuracy"):
        tune(config, trials=1, storage=storage, study_name="shared", output=tmp_path / "best.yaml")
    raw["tune"] = {"params": {"train.seed": {"choices": [1, 2]}}}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"searches train.epochs and this config searches train.seed"):
        tune(config, trials=1, storage=storage, study_name="shared", output=tmp_path / "best.yaml")


def test_a_search_with_no_completed_trial_says_so(banking_slice, tmp_path):
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "tfidf-linear")
    raw = yaml.safe_load(config.read_text())
    raw["tune"] = {"params": {"train.epochs": {"choices": [1]}}}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="no trial completed"):
        tune(config, trials=1, timeout=0, storage=f"sqlite:///{tmp_path / 's.db'}", output=tmp_path / "best.yaml")


def test_a_search_over_backbone_auto_trains_the_backbone_train_would_choose(banking_slice, tmp_path):
    config = write_config(banking_slice, "auto")
    raw = yaml.safe_load(config.read_text())
    raw["train"].update(batch_size=32, early_stopping=None, max_steps=4)
    raw["model"]["max_length"] = 32
    raw["tune"] = {"params": {"train.learning_rate": {"choices": [5e-5]}}}
    config.write_text(yaml.safe_dump(raw))
    result = tune(config, trials=1, storage=f"sqlite:///{tmp_path / 's.db'}", output=tmp_path / "best.yaml")
    assert result.trials == 1
    assert load_config(tmp_path / "best.yaml").model.backbone == "minilm-l6"
