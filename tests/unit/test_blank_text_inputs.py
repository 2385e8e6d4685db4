"""Which tasks refuse a blank text in a `/v1/predict` request (and so in `Model.predict`, which checks the same
`Input` type): every task that classifies, tags or answers a text; a generator takes an empty prompt."""

import pytest
from pydantic import ValidationError

from modelyard.serving.schemas import predict_request_model
from modelyard.serving.settings import ServeSettings
from modelyard.tasks import get_task

TEXT_TASKS = ["text_classification", "multilabel_classification", "token_classification", "assistant"]


@pytest.mark.parametrize("name", TEXT_TASKS)
def test_a_text_task_refuses_a_blank_input_naming_it(name):
    request = predict_request_model(get_task(name).Input, ServeSettings())
    with pytest.raises(ValidationError) as err:
        request.model_validate({"inputs": ["a real text", " \n\t"]})
    (problem,) = err.value.errors()
    assert problem["loc"] == ("inputs", 1) and problem["msg"] == "blank or whitespace only: there is no text to predict"


@pytest.mark.parametrize("name", TEXT_TASKS)
def test_a_text_task_keeps_the_servers_text_limit(name):
    request = predict_request_model(get_task(name).Input, ServeSettings(max_text_chars=5))
    with pytest.raises(ValidationError, match="at most 5 characters"):
        request.model_validate({"inputs": ["too long a text"]})


def test_a_generator_takes_an_empty_prompt_as_free_generation_from_its_start_token():
    request = predict_request_model(get_task("text_generation").Input, ServeSettings())
    assert request.model_validate({"inputs": ["", "  "]}).inputs == ["", "  "]
