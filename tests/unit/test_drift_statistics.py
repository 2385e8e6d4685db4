"""Drift statistics on synthetic distributions: the same distribution passes, a shifted one is flagged."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.drift.statistics import bin_counts, mmd_test, psi, psi_test, psi_threshold, quantile_edges
from modelyard.errors import UserError
from modelyard.monitoring.monitor import parse_since

RNG = np.random.default_rng(7)


def lengths_psi(reference: np.ndarray, window: np.ndarray):
    edges = quantile_edges(reference, 10)
    return psi_test(bin_counts(reference, edges), bin_counts(window, edges), "psi")


def test_psi_of_a_sample_from_the_same_distribution_is_not_drift():
    result = lengths_psi(RNG.lognormal(4, 0.5, 5000), RNG.lognormal(4, 0.5, 1000))
    assert result.statistic < 0.05 and not result.detected


def test_psi_of_a_shifted_distribution_is_drift():
    result = lengths_psi(RNG.lognormal(4, 0.5, 5000), RNG.lognormal(4.6, 0.5, 1000))
    assert result.statistic > 0.2 and result.detected


def test_psi_is_zero_for_identical_counts_and_symmetric():
    a, b = np.array([10, 20, 30]), np.array([30, 20, 10])
    assert psi(a, a) == pytest.approx(0.0)
    assert psi(a, b) == pytest.approx(psi(b, a))


def test_psi_threshold_is_the_rule_of_thumb_for_large_windows_and_higher_for_small_ones():
    assert psi_threshold(10, 5000, 5000) == 0.2
    assert psi_threshold(10, 5000, 50) > 0.5
    assert psi_threshold(77, 512, 200) > psi_threshold(10, 512, 200)


def test_predicted_label_psi_of_many_classes_on_a_small_window_is_not_noise_driven():
    classes = 77
    reference = np.bincount(RNG.integers(0, classes, 512), minlength=classes)
    window = np.bincount(RNG.integers(0, classes, 100), minlength=classes)
    assert not psi_test(reference, window, "psi").detected


def test_mmd_of_samples_from_the_same_distribution_is_not_drift():
    result = mmd_test(RNG.normal(size=(200, 16)), RNG.normal(size=(150, 16)))
    assert result.p_value > 0.01 and not result.detected


def test_mmd_of_a_shifted_distribution_is_drift():
    result = mmd_test(RNG.normal(size=(200, 16)), RNG.normal(size=(150, 16)) + 0.5)
    assert result.p_value < 0.001 and result.detected and result.statistic > 0


def test_since_accepts_durations_and_dates_and_names_bad_values():
    assert parse_since("2h", now=10_000.0) == pytest.approx(10_000.0 - 7200)
    assert parse_since("30m", now=10_000.0) == pytest.approx(10_000.0 - 1800)
    assert parse_since("2026-01-31T12:00") > 0
    assert parse_since(None) is None
    with pytest.raises(UserError, match="--since"):
        parse_since("yesterday-ish")
