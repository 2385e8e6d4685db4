"""Span feedback and the prediction log of an entity extractor when personal data is redacted: spans never meet a
text they were not counted in, and a name replaced in the logged input is replaced in the logged spans too."""

from __future__ import annotations

import json

import pytest

from modelyard.errors import DataError
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, read_predictions
from modelyard.privacy import Redactor
from modelyard.tasks import get_task

TEXT = "Write to jane@example.com in London ."


def test_span_feedback_on_a_redacted_logged_text_is_refused_naming_the_reason():
    task = get_task("token_classification")
    spans = [{"start": 6, "end": 12, "label": "person"}]
    with pytest.raises(DataError, match=r"the logged text was redacted \(it holds <PERSON>"):
        task.feedback_example(None, "I met <PERSON> in London yesterday .", spans)
    with pytest.raises(DataError, match=r"holds <EMAIL:3f2a9c1b>"):
        task.feedback_example(None, "Write to <EMAIL:3f2a9c1b> in London .", spans)
    kept = task.feedback_example(None, "I met Justin in London yesterday .", spans)
    assert kept["entities"] == [{"start": 6, "end": 12, "label": "person"}]


def test_span_feedback_keeps_start_end_and_the_stripped_label_only():
    """A label " PER " was refused as unknown though training strips it; extra keys were stored verbatim."""
    task = get_task("token_classification")
    spans = [{"start": 0, "end": 4, "label": " PER ", "text": "WRONG", "score": 0.3}]
    assert task.feedback_label(None, spans) == [{"start": 0, "end": 4, "label": "PER"}]
    assert task.feedback_label(None, json.dumps(spans)) == [{"start": 0, "end": 4, "label": "PER"}]
    with pytest.raises(DataError, match=r"list of \{start, end, label\} spans"):
        task.feedback_label(None, [{"start": 0, "label": "PER"}])


def test_logged_entity_texts_are_redacted_like_the_logged_input(tmp_path):
    writer = PredictionLogWriter(tmp_path / "predictions.db", redact_inputs=Redactor(kinds=("email",)))
    answer = {
        "entities": [
            {"start": 9, "end": 25, "label": "contact", "score": 0.9, "text": "jane@example.com"},
            {"start": 0, "end": 13, "label": "phrase", "score": 0.8, "text": "Write to jane"},
            {"start": 29, "end": 35, "label": "location", "score": 0.9, "text": "London"},
        ]
    }
    writer.append([PredictionRecord("p1", 1.0, "m", "1", TEXT, answer, 1.0)])
    writer.close()
    row = read_predictions(directory=tmp_path).iloc[0]
    assert json.loads(row["input"]) == "Write to <EMAIL> in London ."
    texts = [span["text"] for span in json.loads(row["output"])["entities"]]
    assert texts == ["<EMAIL>", "Write to <EMAIL>", "London"]


def test_span_feedback_with_start_after_end_says_start_must_be_smaller_than_end():
    """It was reported as lying outside the text, with a hint about characters and bytes."""
    task = get_task("token_classification")
    with pytest.raises(DataError, match=r"the spans: entity 0 \(3, 0\): start must be smaller than end"):
        task.feedback_example(None, "Bob went to Paris", [{"start": 3, "end": 0, "label": "PER"}])
