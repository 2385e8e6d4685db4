"""JSON Lines are split at "\\n" only: U+2028, U+2029 and U+0085, which `json.dumps(..., ensure_ascii=False)` writes
raw inside strings, stay inside their record instead of cutting it in two and shifting later line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.data import text_corpus
from modelyard.data.entities import read_spans
from modelyard.data.jsonl import json_lines
from modelyard.errors import DataError
from modelyard.monitoring.feedback import read_rows
from modelyard.monitoring.preferences import import_chat_feedback
from modelyard.tasks.assistant import AssistantDataConfig, read_questions

SEPARATORS = ["\u2028", "\u2029", "\x85"]


def _write(path: Path, rows: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def test_lines_are_split_at_newlines_only_and_a_carriage_return_before_one_is_dropped():
    assert json_lines('{"a": "x\u2028y\x85z"}\r\n{"b": 1}\n') == ['{"a": "x\u2028y\x85z"}', '{"b": 1}', ""]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_chat_training_data_keeps_a_line_separator_inside_its_message(tmp_path, separator):
    chat = [{"role": "user", "content": f"first line{separator}second line"}, {"role": "assistant", "content": "ok"}]
    path = _write(tmp_path / "train.jsonl", [{"messages": chat}], tail="{not json}\n")
    with pytest.raises(DataError, match=r"train\.jsonl: line 2: not valid JSON"):
        text_corpus.read_located(path, text_corpus.Fields())
    path = _write(tmp_path / "train.jsonl", [{"messages": chat}])
    assert text_corpus.read(path, text_corpus.Fields()) == [{"messages": chat}]


def test_an_imported_preference_pair_keeps_a_next_line_character_in_its_prompt(tmp_path):
    rows = [{"prompt": "Hello\x85world", "chosen": "hi", "rejected": "go away"}]
    path = _write(tmp_path / "pairs.jsonl", rows, tail='{"prompt": "q", "chosen": "a"}\n')
    with pytest.raises(DataError, match=r"pairs\.jsonl, line 2: .*'rejected' must be"):
        import_chat_feedback(path, path.read_text(encoding="utf-8"), "chat")


def test_label_feedback_entity_and_question_files_keep_a_paragraph_separator_inside_a_string(tmp_path):
    labels = _write(tmp_path / "labels.jsonl", [{"prediction_id": "a", "label": "x\u2029y"}, {"prediction_id": "b"}])
    with pytest.raises(DataError, match=r"labels\.jsonl, line 2: expected an object with prediction_id and label"):
        read_rows(labels)
    spans = _write(tmp_path / "spans.jsonl", [{"text": "Ann\u2028Lee", "entities": []}])
    assert [e["text"] for e in read_spans(spans)[0]] == ["Ann\u2028Lee"]
    questions = _write(tmp_path / "q.jsonl", [{"question": "why\u2028now?", "answers": []}])
    assert read_questions(str(questions), AssistantDataConfig(train="docs"))[0]["question"] == "why\u2028now?"


def test_mixed_chat_and_plain_records_name_the_file_and_line_of_the_odd_one(tmp_path):
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = _write(tmp_path / "train.jsonl", [chat, chat, {"text": "plain"}, chat])
    located = text_corpus.read_located(path, text_corpus.Fields())
    with pytest.raises(DataError, match=r"train\.jsonl: line 3: mixed data: 3 chat examples and 1 plain texts"):
        text_corpus.kind([item for _, item in located], [where for where, _ in located])
