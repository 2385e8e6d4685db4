"""`predict --input` on a chat model reads a row's messages as a conversation (never the printed list) and its
prompt field; a text model refuses a messages column instead of scoring the list's text."""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import modelyard
from modelyard.data.readers import PREDICT, read_table
from modelyard.data.text_corpus import render_plain
from modelyard.errors import DataError
from modelyard.predict_io import frame_inputs, no_text
from modelyard.tasks.text_classification import TextClassificationTask, TextDataConfig
from modelyard.tasks.text_generation import GenerationDataConfig, TextGenerationTask

CHAT = [
    {"role": "system", "content": "Answer with the intent."},
    {"role": "user", "content": "I lost my card"},
    {"role": "assistant", "content": "lost_or_stolen_card"},
]


def _chat_model() -> SimpleNamespace:
    data = GenerationDataConfig(train="t")
    return SimpleNamespace(task=TextGenerationTask(), learner=None, config=SimpleNamespace(data=data))


def _read(path: Path, lines: list[str]) -> pd.DataFrame:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return read_table(path, settings=PREDICT)[0]


def test_a_messages_column_is_the_conversation_without_its_reference_answer(tmp_path):
    file = tmp_path / "chat.jsonl"
    frame = _read(file, [json.dumps({"id": 1, "messages": CHAT}), json.dumps({"id": 2, "messages": CHAT[:2]})])
    model = _chat_model()
    assert not no_text(model, frame, file).any()
    assert frame_inputs(model, frame, file) == [CHAT[:2], CHAT[:2]]


def test_a_csv_messages_cell_is_read_as_its_json_list():
    frame = pd.DataFrame({"messages": [json.dumps(CHAT)]})
    assert frame_inputs(_chat_model(), frame, Path("chat.csv")) == [CHAT[:2]]


def test_a_row_whose_messages_are_only_an_answer_is_refused_naming_its_line(tmp_path):
    file = tmp_path / "chat.jsonl"
    frame = _read(file, [json.dumps({"messages": CHAT}), json.dumps({"messages": CHAT[2:]})])
    with pytest.raises(DataError, match=r"chat\.jsonl: line 2: 'messages' holds only an assistant answer"):
        frame_inputs(_chat_model(), frame, file)


def test_a_prompt_completion_file_is_read_by_the_models_prompt_field(tmp_path):
    file = tmp_path / "pc.jsonl"
    frame = _read(file, ['{"prompt": "I lost my card", "completion": "lost_or_stolen_card"}'])
    assert frame_inputs(_chat_model(), frame, file) == ["I lost my card"]


def test_a_chat_file_with_neither_field_names_both_never_none(tmp_path):
    frame = pd.DataFrame({"question": ["hi"], "answer": ["hello"]})
    with pytest.raises(DataError, match=r"no column 'messages' or 'prompt' and more than one column") as err:
        frame_inputs(_chat_model(), frame, Path("qa.jsonl"))
    assert "None" not in str(err.value)


def test_a_text_model_refuses_a_messages_column_instead_of_scoring_its_printed_list(tmp_path):
    file = tmp_path / "chat.jsonl"
    frame = _read(file, [json.dumps({"messages": CHAT})])
    model = SimpleNamespace(task=TextClassificationTask(), config=SimpleNamespace(data=TextDataConfig(train="t")))
    with pytest.raises(DataError, match=r"chat\.jsonl: line 1: column 'messages' holds a list, not a text"):
        frame_inputs(model, frame, file)


def test_a_generation_model_answers_a_dataframes_messages_as_the_conversation(tiny_gpt_bundle):
    model = modelyard.load(tiny_gpt_bundle)
    (answer,) = model.predict(pd.DataFrame({"messages": [CHAT]}))
    (expected,) = model.predict([render_plain(CHAT[:2])])  # the GPT renders a chat as `role: content` lines
    assert answer["prompt_tokens"] == expected["prompt_tokens"]


def test_a_generation_model_refuses_an_input_neither_a_text_nor_a_chat_naming_it(tiny_gpt_bundle):
    model = modelyard.load(tiny_gpt_bundle)
    with pytest.raises(DataError, match=r"^inputs\.1: expected a text or a list of chat messages, got int$"):
        model.predict(["hi", 3])
    with pytest.raises(DataError, match=r"inputs\.0: message 0 needs a role"):
        model.predict([[{"role": "robot", "content": "hi"}]])


def test_an_assistant_reads_the_question_field_of_its_validation_format_and_names_it_when_missing(tmp_path):
    from modelyard.tasks.assistant import AssistantDataConfig, AssistantTask

    data = AssistantDataConfig(train="docs", question_field="ask")
    model = SimpleNamespace(task=AssistantTask(), learner=None, config=SimpleNamespace(data=data))
    file = tmp_path / "q.jsonl"
    frame = _read(file, [json.dumps({"ask": "Who wrote Hamlet?", "answers": ["Shakespeare"]})])
    assert frame_inputs(model, frame, file) == ["Who wrote Hamlet?"]
    with pytest.raises(DataError, match=r"no column 'ask' and more than one column to choose from: question, answers"):
        frame_inputs(model, frame.rename(columns={"ask": "question"}), file)
