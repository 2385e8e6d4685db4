"""Which tasks refuse a blank text in a `/v1/predict` request (and so in `Model.predict`, which checks the same
`Input` type): every task that classifies, tags or answers a text; a generator takes an empty prompt."""

import pytest
from pydantic import ValidationError

from modelyard.serving.schemas import predict_request_model
from modelyard.serving.settings import ServeSettings
from modelyard.tasks import get_task

TEXT_TASKS = ["text_classification", "multilabel_classification", "token_classification", "assistant"]


BLANKS = [" \n\t", "\u3000\u3000", "\u200b", "\ufeff", " \u200c\u200d\u2060 "]  # zero-width characters show nothing


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("name", TEXT_TASKS)
def test_a_text_task_refuses_a_blank_input_naming_it(name, blank):
    request = predict_request_model(get_task(name).Input, ServeSettings())
    with pytest.raises(ValidationError) as err:
        request.model_validate({"inputs": ["a real text", blank]})
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


def test_a_text_with_a_zero_width_character_among_its_words_is_not_blank():
    request = predict_request_model(get_task("text_classification").Input, ServeSettings())
    assert request.model_validate({"inputs": ["好\u200b吃"]}).inputs == ["好\u200b吃"]


def test_training_drops_rows_whose_text_is_only_zero_width_characters():
    import pandas as pd

    from modelyard.data.cleaning import clean_labelled

    frame = pd.DataFrame({"text": ["good", "\u200b", "\ufeff\u3000", "bad"], "label": ["a", "a", "b", "b"]})
    kept, report = clean_labelled(frame, "text", "label")
    assert kept["text"].tolist() == ["good", "bad"] and report.empty_input == 2


def test_predict_input_rows_of_zero_width_characters_are_named_and_not_scored(tfidf_bundle, tmp_path):
    from typer.testing import CliRunner

    from modelyard.cli import app

    source = tmp_path / "q.csv"
    source.write_text("text\ncard lost\n\u200b\n\ufeff\ntop up\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["predict", str(tfidf_bundle), "--input", str(source), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "2 rows with no text" in result.output and "lines 3, 4" in result.output
    assert len(output.read_text(encoding="utf-8").splitlines()) == 3  # the header and the two texts
