"""`tune` on a small LightGBM credit table: the study's MLflow run, integer ranges, metrics validate can check."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelyard.tracking import store
from modelyard.tuning import tune

CREDIT = Path(__file__).resolve().parents[2] / "examples" / "data" / "credit_default" / "credit_default_2000.csv"


@pytest.fixture(scope="module")
def credit_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("credit") / "credit400.csv"
    pd.read_csv(CREDIT).iloc[:400].to_csv(path, index=False)
    return path


def credit_config(folder: Path, csv: Path, params: dict, **tune_extra) -> Path:
    raw = {
        "name": "credit-tune",
        "task": "tabular_classification",
        "data": {
            "train": str(csv),
            "target_column": "default.payment.next.month",
            "positive_label": "1",
            "split": {"validation": 0.2, "test": 0.2, "seed": 42, "stratify": True},
        },
        "model": {"backbone": "lightgbm", "bag_folds": 1, "calibration": "none"},
        "train": {"time_limit_s": 30},
        "tune": {"params": params, **tune_extra},
    }
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_the_study_run_ends_finished_with_the_best_value_and_params(credit_csv, tmp_path):
    config = credit_config(tmp_path, credit_csv, {"model.gbdt.num_leaves": {"choices": [2, 4]}})
    result = tune(config, trials=2, storage=f"sqlite:///{tmp_path / 'study.db'}", output=tmp_path / "best.yaml")
    client = store.client()
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("credit-tune").experiment_id], "attributes.run_name = 'tune-credit-tune'"
    )
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_roc_auc"] == pytest.approx(result.best_value)
    assert parent.data.params["best.model.gbdt.num_leaves"] == str(result.best_params["model.gbdt.num_leaves"])


@pytest.mark.parametrize(
    ("key", "spec", "integer"),
    [
        ("model.bag_folds", {"low": 1, "high": 5}, True),  # typed int by the task's model section
        ("train.epochs", {"low": 1, "high": 4}, True),
        ("train.learning_rate", {"low": 0, "high": 1}, False),  # typed float, whole ends or not
        ("model.gbdt.num_leaves", {"low": 2, "high": 9}, True),  # free-form LightGBM params: the range decides
        ("model.gbdt.learning_rate", {"low": 0.01, "high": 0.3}, False),
    ],
)
def test_a_range_is_sampled_as_integers_when_the_schema_types_the_key_int(credit_csv, tmp_path, key, spec, integer):
    from modelyard.config import ParamRange
    from modelyard.tasks import load_config
    from modelyard.tuning import is_integer_key

    config = load_config(credit_config(tmp_path, credit_csv, {key: spec}))
    assert is_integer_key(config, key, ParamRange.model_validate(spec)) is integer


def test_integer_keys_are_searched_as_integers_so_every_trial_trains(credit_csv, tmp_path):
    params = {"model.gbdt.num_leaves": {"low": 2, "high": 9}, "model.bag_folds": {"low": 1, "high": 2}}
    config = credit_config(tmp_path, credit_csv, params)
    result = tune(config, trials=2, storage=f"sqlite:///{tmp_path / 'study.db'}", output=tmp_path / "best.yaml")
    assert result.trials == 2 and all(isinstance(v, int) for v in result.best_params.values())


def test_a_trial_the_model_library_refuses_fails_in_one_line_without_a_traceback(credit_csv, tmp_path, capsys):
    from modelyard.errors import ConfigError

    config = credit_config(tmp_path, credit_csv, {"model.gbdt.num_leaves": {"choices": [1]}})
    with pytest.raises(ConfigError, match=r"no trial completed \(trial 0 .*training failed"):
        tune(config, trials=1, storage=f"sqlite:///{tmp_path / 'study.db'}", output=tmp_path / "best.yaml")
    assert "Traceback" not in capsys.readouterr().err


def test_validate_refuses_a_fractional_step_of_an_integer_key(credit_csv, tmp_path):
    from modelyard import api
    from modelyard.errors import ConfigError

    config = credit_config(tmp_path, credit_csv, {"model.bag_folds": {"low": 1, "high": 5, "step": 0.5}})
    with pytest.raises(ConfigError, match=r"tune.params.model.bag_folds = 1.5"):
        api.validate(config)


def test_the_metrics_tune_accepts_are_those_a_real_evaluation_reports(credit_csv, tmp_path):
    import modelyard
    from modelyard.learners.tabular import TabularLearner

    config = credit_config(tmp_path, credit_csv, {"model.gbdt.num_leaves": {"choices": [4]}})
    model = modelyard.train(config, output=tmp_path / "bundle", quiet=True)
    reported = model.evaluate(str(credit_csv))
    scalars = {k for k, v in reported.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    assert set(TabularLearner.reported_metrics("binary")) == scalars


@pytest.mark.parametrize(("metric", "refused"), [("rmse", True), ("pr_auc", False)])
def test_validate_refuses_a_tune_metric_a_table_never_reports(credit_csv, tmp_path, metric, refused):
    from modelyard import api
    from modelyard.errors import ConfigError

    config = credit_config(tmp_path, credit_csv, {"model.gbdt.num_leaves": {"choices": [4]}}, metric=metric)
    if refused:
        with pytest.raises(ConfigError, match="reports no metric 'rmse'"):
            api.validate(config)
    else:
        api.validate(config)
