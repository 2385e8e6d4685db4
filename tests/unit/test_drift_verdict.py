"""The drift verdict: no test that could run is no verdict (None), never "no drift"."""

from __future__ import annotations

import json
import math

from prometheus_client import CollectorRegistry

from modelyard.drift.reference import UNPROFILED, Reference
from modelyard.monitoring.drift import drift
from modelyard.monitoring.watch import DriftGauges


def test_a_window_where_every_test_is_skipped_is_not_judged_and_says_why():
    unprofiled = Reference({"format": 1, "inputs": {"skipped": UNPROFILED}})
    result = drift(unprofiled, None, ["a forecast request"] * 40, ["up"] * 40)
    assert result["detected"] is None
    assert result["reason"] == (
        f"no drift test could run (inputs: {UNPROFILED}; "
        "predicted_labels: the reference has no predicted-label distribution)"
    )
    assert "no length profile" not in json.dumps(result)


def test_a_window_too_small_to_judge_is_not_judged():
    profile = {"format": 1, "predicted": {"counts": {"a": 5, "b": 5}}, "inputs": {"skipped": UNPROFILED}}
    result = drift(Reference(profile), None, ["x"] * 29, ["a"] * 29)
    assert result == {"detected": None, "reason": "only 29 predictions in the window; drift needs at least 30"}


def test_one_test_that_ran_gives_a_verdict():
    profile = {"format": 1, "predicted": {"counts": {"a": 50, "b": 50}}, "inputs": {"skipped": UNPROFILED}}
    result = drift(Reference(profile), None, ["x"] * 40, ["a"] * 20 + ["b"] * 20)
    assert result["detected"] is False and result["reason"] == "no test exceeds its threshold"


def test_the_drift_gauge_of_an_unjudged_window_is_nan_not_zero():
    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    drift_section = {"detected": None, "reason": "only 3 predictions in the window; drift needs at least 30"}
    gauges.set({"drift": drift_section, "window": {"predictions": 3}, "feedback": {"count": 0, "accuracy": None}})
    assert math.isnan(registry.get_sample_value("modelyard_drift_detected"))
