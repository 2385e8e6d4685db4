"""Bootstrap intervals, calibration error and generic metric rendering: small exact cases."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation.sections import metric_table
from modelyard.metrics.stats import (
    bootstrap_intervals,
    bootstrap_ratios,
    expected_calibration_error,
    pairs_from_confusion,
    reliability,
)


def test_bootstrap_intervals_bracket_the_point_estimate():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, 5, 400))
    intervals = bootstrap_intervals(y_true, y_pred, 5)
    assert set(intervals) == {"accuracy", "macro_f1", "macro_precision", "macro_recall"}
    for value in intervals.values():
        assert value["low"] < value["value"] < value["high"]
    assert intervals["accuracy"]["value"] == pytest.approx(np.mean(y_true == y_pred))
    assert intervals["accuracy"]["high"] - intervals["accuracy"]["low"] < 0.12


def test_bootstrap_point_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2, 2])
    point = bootstrap_intervals(y_true, y_pred, 4, resamples=10)["macro_f1"]["value"]
    assert point == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_intervals_narrow_as_the_test_set_grows():
    def width(n: int) -> float:
        y = np.arange(n) % 3
        pred = np.where(np.arange(n) % 4 == 0, (y + 1) % 3, y)
        ci = bootstrap_intervals(y, pred, 3)["accuracy"]
        return ci["high"] - ci["low"]

    assert width(2000) < width(100) / 2


def test_ece_of_a_perfectly_calibrated_toy_case_is_about_zero():
    confidence, correct = [], []
    for c in np.linspace(0.05, 0.95, 10):
        confidence += [c] * 100
        correct += [1] * round(c * 100) + [0] * (100 - round(c * 100))
    assert expected_calibration_error(confidence, correct, bins=10) == pytest.approx(0.0, abs=1e-9)


def test_ece_of_an_overconfident_model_is_its_confidence_gap():
    confidence = np.full(100, 0.9)
    correct = np.arange(100) < 60
    rel = reliability(confidence, correct)
    assert rel["ece"] == pytest.approx(0.3)
    assert rel["count"].sum() == 100


def test_pairs_from_a_confusion_matrix_reproduce_its_counts():
    matrix = [[3, 1], [0, 2]]
    y_true, y_pred = pairs_from_confusion(matrix)
    rebuilt = np.zeros((2, 2), dtype=int)
    np.add.at(rebuilt, (y_true, y_pred), 1)
    assert rebuilt.tolist() == matrix


def test_any_metric_dict_renders_as_a_table_of_its_scalars():
    metrics = {"mae": 1.5, "tokens": 1200, "by_step": [1, 2], "per_k": {"recall@5": 0.1}, "note": "x"}
    table = metric_table(metrics)
    assert [row[0] for row in table.rows] == ["mae", "tokens", "per_k.recall@5", "note"]


def test_ratio_bootstrap_pools_units_and_applies_the_transform():
    rng = np.random.default_rng(2)
    squared = rng.gamma(2.0, 1.0, 300)  # per-window sums of squared errors
    points = rng.integers(1, 8, 300)
    out = bootstrap_ratios({"rmse": (squared, points)}, {"rmse": np.sqrt})["rmse"]
    assert out["value"] == pytest.approx(np.sqrt(squared.sum() / points.sum()))
    assert out["low"] < out["value"] < out["high"]


def test_block_bootstrap_widens_the_interval_of_correlated_units():
    errors = np.repeat(np.random.default_rng(3).normal(5, 2, 40), 10)  # 400 windows, runs of 10 equal errors
    ones = np.ones_like(errors)
    naive = bootstrap_ratios({"mae": (errors, ones)})["mae"]
    blocked = bootstrap_ratios({"mae": (errors, ones)}, block=10)["mae"]
    assert blocked["high"] - blocked["low"] > 2 * (naive["high"] - naive["low"])
