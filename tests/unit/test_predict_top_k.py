"""`predict --top-k` on a model with no classes, and a text given to a model that reads objects, are refused with
what to use instead."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelyard.errors import DataError, UserError
from modelyard.learners.forecast import ForecastInput
from modelyard.learners.recommender import RecommendInput
from modelyard.protocols import check_top_k, validate_input


def model(task: str, labels: list[str] | None, input_type: type) -> SimpleNamespace:
    return SimpleNamespace(labels=labels, manifest={"task": task}, task=SimpleNamespace(Input=input_type))


def test_top_k_on_a_recommender_is_refused_naming_each_rows_k():
    with pytest.raises(UserError, match="--top-k 2: a recommendation model has no classes") as err:
        check_top_k(model("recommendation", None, RecommendInput), 2)
    assert '"k": 2' in err.value.hint


def test_top_k_in_a_request_is_refused_in_the_requests_words():
    with pytest.raises(UserError, match="top_k 2: a forecasting model has no classes") as err:
        check_top_k(model("forecasting", None, ForecastInput), 2, "top_k")
    assert err.value.hint == "leave top_k out"


def test_top_k_on_a_forecaster_is_refused_and_told_to_leave_it_out():
    with pytest.raises(UserError, match="forecasting model has no classes") as err:
        check_top_k(model("forecasting", None, ForecastInput), 3)
    assert err.value.hint == "leave --top-k out"


def test_top_k_on_a_classifier_and_the_default_on_anything_pass():
    check_top_k(model("text_classification", ["a", "b"], str), 2)
    check_top_k(model("recommendation", None, RecommendInput), 1)


def test_a_text_given_to_a_recommender_names_the_keys_it_reads():
    with pytest.raises(DataError) as err:
        validate_input(RecommendInput, "196")
    assert '"user", "item", "k"' in err.value.hint
    assert "--input rows.jsonl" in err.value.hint


def test_the_python_api_refuses_top_k_for_a_model_without_classes_too():
    from pathlib import Path

    from modelyard.loader import Model

    config = SimpleNamespace(task="forecasting")
    forecaster = Model(Path("bundle"), {"task": "forecasting", "name": "f"}, config, learner=SimpleNamespace())
    with pytest.raises(UserError, match="top_k 2: a forecasting model has no classes"):
        forecaster.predict([{"series": [1.0, 2.0]}], top_k=2)
