"""`Model.predict` checks its inputs as the server checks a request's: a list of the task's inputs, `top_k` >= 1."""

import pandas as pd
import pytest

import modelyard
from modelyard.errors import DataError, UserError


@pytest.fixture(scope="module")
def model(tfidf_bundle):
    return modelyard.load(tfidf_bundle)


def test_a_lone_text_is_refused_with_a_hint_to_pass_a_list_not_predicted_per_character(model):
    with pytest.raises(DataError, match="inputs: expected a list of inputs, got one str") as err:
        model.predict("I lost my card")
    assert "[text]" in err.value.hint


def test_a_lone_mapping_is_refused_not_predicted_as_its_keys(model):
    with pytest.raises(DataError, match="got one dict"):
        model.predict({"text": "I lost my card"})


@pytest.mark.parametrize("item", [None, 1, b"I lost my card", {"text": "hi"}])
def test_an_item_that_is_not_a_text_is_refused_naming_its_index(model, item):
    with pytest.raises(DataError, match=r"inputs\.1: Input should be a valid string"):
        model.predict(["I lost my card", item])


def test_a_dataframe_is_read_by_the_training_text_column(model):
    frame = pd.DataFrame({"id": [1, 2], "text": ["I lost my card", "where is my money"]})
    assert model.predict(frame) == model.predict(["I lost my card", "where is my money"])


def test_a_dataframe_without_the_text_column_is_refused_naming_the_columns(model):
    with pytest.raises(DataError, match=r"no column 'text'.*a, b"):
        model.predict(pd.DataFrame({"a": ["x"], "b": ["y"]}))


@pytest.mark.parametrize("top_k", [0, -1, "3", True, 2.0])
def test_top_k_is_a_whole_number_of_at_least_one(model, top_k):
    with pytest.raises(UserError, match="top_k: expected a whole number >= 1"):
        model.predict(["I lost my card"], top_k=top_k)


@pytest.mark.parametrize("ref", [None, 5])
def test_load_of_something_that_is_not_a_path_is_a_clear_error(ref):
    import modelyard

    with pytest.raises(UserError, match="load: expected a bundle folder or models:/NAME@ALIAS"):
        modelyard.load(ref)


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_text_is_refused_naming_its_index_not_scored(model, blank):
    with pytest.raises(DataError, match=r"^inputs\.1: blank or whitespace only: there is no text to predict$"):
        model.predict(["I lost my card", blank])


def test_a_dataframe_row_with_no_text_is_refused_naming_its_index(model):
    with pytest.raises(DataError, match=r"inputs\.1: blank or whitespace only"):
        model.predict(pd.DataFrame({"text": ["I lost my card", None]}))
