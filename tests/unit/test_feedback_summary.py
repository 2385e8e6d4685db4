"""`monitor`'s live accuracy: labels scored against answers that are labels, and nothing made up for others."""

from __future__ import annotations

import json

import pandas as pd

from modelyard.commands.monitor import _model_name
from modelyard.monitoring.monitor import feedback_summary


def logged(outputs: list[dict], labels: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"output": [json.dumps(o) for o in outputs], "label": [json.dumps(x) for x in labels]})


def test_labels_given_to_label_answers_are_scored_as_accuracy():
    rows = logged([{"label": "pos"}, {"label": "neg"}], ["pos", "pos"])
    assert feedback_summary(rows) == {"count": 2, "accuracy": 0.5}


def test_labels_given_to_forecasts_or_rankings_are_counted_but_never_scored_as_wrong():
    rows = logged([{"forecast": [1.0, 2.0], "horizon": 2}, {"user": "1", "items": [{"item": "50"}]}], ["1.5", "50"])
    assert feedback_summary(rows) == {"count": 2, "accuracy": None}


def test_a_retrain_side_is_named_by_its_version_or_else_its_bundle_path():
    """A champion given as a bundle path was printed as `champion vNone`."""
    assert _model_name({"version": None, "path": "/models/b_go"}) == "/models/b_go"
    assert _model_name({"version": 3, "path": "/home/registry/m/3"}) == "v3"
