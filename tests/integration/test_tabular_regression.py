"""Tabular regression and multiclass classification on scikit-learn's bundled tables (diabetes, wine)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_diabetes, load_wine

import modelyard


def _config(folder, frame, task, target, groups=(), **model):
    frame.to_csv(folder / "table.csv", index=False)
    config = {
        "name": f"tiny-{task}",
        "task": task,
        "data": {"train": "table.csv", "target_column": target, "split": {"validation": 0.2, "test": 0.2}},
        "model": {"backbone": "lightgbm", **model},
        "evaluation": {"groups": list(groups)},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _train(folder, frame, task, target, groups=(), **model):
    config = _config(folder, frame, task, target, groups, **model)
    return modelyard.train(config, output=folder / "bundle", quiet=True, track=False)


def test_regression_reports_errors_and_conformal_intervals(tmp_path):
    frame = load_diabetes(as_frame=True).frame
    model = _train(tmp_path, frame, "tabular_regression", "target", groups=["sex"])
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert {"rmse", "mae", "mape", "r2", "interval_coverage"} <= set(metrics["test"])
    assert metrics["test"]["r2"] > 0.2
    assert metrics["test"]["rmse"] < metrics["baselines"]["linear_ridge"]["test"]["rmse"] * 1.3
    assert 0.7 <= metrics["test"]["interval_coverage"] <= 1.0  # 90% split-conformal intervals on 89 test rows
    mae = metrics["test_intervals"]["mae"]
    assert mae["low"] <= metrics["test"]["mae"] <= mae["high"] and mae["value"] == pytest.approx(metrics["test"]["mae"])
    sexes = metrics["test"]["groups"]["sex"]
    assert len(sexes["groups"]) == 2 and sum(g["rows"] for g in sexes["groups"].values()) == metrics["test"]["samples"]
    card = (model.path / "MODEL_CARD.md").read_text()
    assert "test (95% bootstrap interval)" in card and f"[{mae['low']:.4f}, {mae['high']:.4f}]" in card
    [answer] = model.predict([frame.drop(columns=["target"]).iloc[0].to_dict()])
    low, high = answer["interval"]
    assert low < answer["value"] < high


def test_monotone_constraints_hold_in_the_trees(tmp_path):
    frame = load_diabetes(as_frame=True).frame
    model = _train(tmp_path, frame, "tabular_regression", "target", monotone={"bmi": 1})
    row = frame.drop(columns=["target"]).iloc[0].to_dict()
    values = [model.predict([{**row, "bmi": b}])[0]["value"] for b in (-0.09, -0.05, 0.0, 0.05, 0.1, 0.17)]
    assert values == sorted(values)


def test_multiclass_tables_get_one_vs_rest_auc_and_group_rates(tmp_path):
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame["vintage"] = np.where(np.arange(len(frame)) % 2, "old", "new")
    model = _train(tmp_path, frame, "tabular_classification", "target", groups=["vintage"])
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert metrics["test"]["roc_auc"] > 0.9
    vintages = metrics["test"]["groups"]["vintage"]
    for group in vintages["groups"].values():
        assert 0 <= group["accuracy"] <= 1 and sum(group["selection_rate"].values()) == pytest.approx(1.0)
        assert set(group["recall"]) == {"barolo", "grignolino", "barbera"}
    assert 0 <= vintages["accuracy_gap"] <= 1 and 0 <= vintages["recall_gap"] <= 1
    assert "logistic_onehot" in metrics["baselines"]
    answer = model.predict([frame.drop(columns=["target"]).iloc[0].to_dict()], top_k=3)[0]
    assert answer["label"] in {"barolo", "grignolino", "barbera"} and len(answer["probabilities"]) == 3


def test_the_mlp_alone_exports_to_onnx_with_parity(tmp_path):
    from modelyard.export.exporter import export

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].astype(str)
    model = _train(tmp_path, frame, "tabular_classification", "target", backbone="mlp")
    assert json.loads((model.path / "tabular.json").read_text())["weights"] == {"mlp": 1.0}
    result = export(model.path, "onnx", latency_samples=5)
    assert result.passed and result.report["parity"]["max_abs_diff"] < 1e-4
    row = frame.drop(columns=["target"]).iloc[3].to_dict()
    exported = modelyard.load(result.path).predict([row], top_k=3)[0]
    assert exported["label"] == model.predict([row])[0]["label"]


@pytest.mark.parametrize(
    ("load", "task"),
    [(load_wine, "tabular_classification"), (load_diabetes, "tabular_regression")],
    ids=["wine", "diabetes"],
)
def test_catboost_alone_is_saved_as_cbm_reloaded_and_exported_to_onnx_with_parity(tmp_path, load, task):
    from modelyard.export.exporter import export

    frame = load(as_frame=True).frame
    frame["target"] = frame["target"].astype(str) if task == "tabular_classification" else frame["target"]
    model = _train(tmp_path, frame, task, "target", backbone="catboost", catboost={"iterations": 200})
    spec = json.loads((model.path / "tabular.json").read_text())
    assert spec["weights"] == {"catboost": 1.0} and spec["members"]["catboost"] == {"files": ["catboost_fold0.cbm"]}
    row = frame.drop(columns=["target"]).iloc[3].to_dict()
    reloaded = modelyard.load(model.path).predict([row])[0]
    assert reloaded == model.predict([row])[0]
    result = export(model.path, "onnx", latency_samples=5)
    assert result.passed and result.report["parity"]["max_abs_diff"] < 1e-4
    exported = modelyard.load(result.path).predict([row])[0]
    key = "label" if task == "tabular_classification" else "value"
    assert exported[key] == pytest.approx(reloaded[key], rel=1e-4) if key == "value" else exported[key] == reloaded[key]


def test_auto_tries_the_families_named_in_model_candidates(tmp_path):
    frame = load_diabetes(as_frame=True).frame
    families = ["lightgbm", "catboost"]
    model = _train(tmp_path, frame, "tabular_regression", "target", backbone="auto", candidates=families,
                   catboost={"iterations": 200})  # fmt: skip
    spec = json.loads((model.path / "tabular.json").read_text())
    assert [c["backbone"] for c in spec["candidates"] if "validation" in c][:2] == families
    assert "mlp" not in spec["members"] and set(spec["weights"]) <= {"lightgbm", "catboost"}


def _validate(folder, frame, task, target, **model):
    from modelyard.api import validate

    return validate(_config(folder, frame, task, target, **model))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ({"backbone": "catboost"}, r"model\.monotone constrains LightGBM only; backbone catboost would ignore it"),
        ({"backbone": "mlp"}, r"model\.monotone constrains LightGBM only; backbone mlp would ignore it"),
        ({"monotone": {"grade": 1}}, r"model\.monotone: 'grade' is categorical"),
        ({"monotone": {"nope": 1}}, r"model\.monotone: 'nope' is not a feature"),
    ],
)
def test_validate_refuses_monotone_constraints_no_member_would_honour(tmp_path, model, match):
    from modelyard.errors import ConfigError

    frame = load_diabetes(as_frame=True).frame.assign(grade=lambda f: (f["bmi"] > 0).map({True: "hi", False: "lo"}))
    with pytest.raises(ConfigError, match=match):
        _validate(tmp_path, frame, "tabular_regression", "target", **({"monotone": {"bmi": 1}} | model))


def test_a_constant_regression_target_is_refused_not_learnt_as_perfect(tmp_path):
    from modelyard.errors import DataError

    frame = load_diabetes(as_frame=True).frame.assign(target=5.0)
    with pytest.raises(DataError, match=r"target 'target' has one value only \(5\) in the training split"):
        _validate(tmp_path, frame, "tabular_regression", "target")


@pytest.mark.parametrize("value", [{"a": 1}, b"\x00\xff"])
def test_a_struct_or_binary_parquet_column_is_named_by_validate_or_left_out(tmp_path, value):
    from modelyard.errors import DataError

    frame = load_diabetes(as_frame=True).frame
    frame["meta"] = [value] * len(frame)
    frame.to_parquet(tmp_path / "table.parquet")
    config = {
        "name": "nested",
        "task": "tabular_regression",
        "data": {"train": "table.parquet", "target_column": "target"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError, match=r"column 'meta' holds (dict|bytes) values") as refused:
        modelyard.validate(tmp_path / "config.yaml")
    assert "data.drop_columns: [meta]" in refused.value.hint
    prepared = modelyard.validate(tmp_path / "config.yaml", ["data.drop_columns=[meta]"])
    assert "meta" not in prepared.report["column_types"]


def test_missing_values_in_a_parquet_table_validate_and_train(tmp_path):
    """pandas keeps NaN through astype(str): the split fingerprints once crashed on any missing cell."""
    frame = load_diabetes(as_frame=True).frame
    frame.loc[::7, "bmi"] = None
    frame.to_parquet(tmp_path / "table.parquet")
    config = {
        "name": "gaps",
        "task": "tabular_regression",
        "data": {"train": "table.parquet", "target_column": "target"},
        "model": {"backbone": "lightgbm", "bag_folds": 1},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    model = modelyard.train(tmp_path / "config.yaml", output=tmp_path / "bundle", quiet=True, track=False)
    assert model.manifest["data"]["train"]["rows"] > 0
