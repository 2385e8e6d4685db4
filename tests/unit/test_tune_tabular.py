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
