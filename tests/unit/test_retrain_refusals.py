"""What `retrain` says about a task it cannot learn from feedback: which tasks it can, and what to do instead."""

from __future__ import annotations

import pytest

from modelyard.errors import DataError, UserError
from modelyard.monitoring.retrain import unlearnable_feedback


def test_an_audio_classifier_is_told_to_train_on_corrected_files_and_promote():
    err = unlearnable_feedback("audio_classification", "calls", True, "calls.yaml")
    assert "'audio_classification' is not one" in err.message
    assert "text, multi-label text, token, table and chat" in err.message
    assert "modelyard monitor" in err.hint
    assert "add the corrected examples" in err.hint
    assert "modelyard train calls.yaml" in err.hint
    assert "modelyard models promote calls latest --alias champion" in err.hint


def test_a_forecaster_is_told_to_train_a_new_version_on_fresh_data():
    err = unlearnable_feedback("forecasting", "sales", False, "sales.yaml")
    assert err.hint.startswith("train a new version on fresh data")
    assert "corrected" not in err.hint


def _rules(task: str, data: dict, classifier: bool = True):
    from modelyard.monitoring.retrain import feedback_rules
    from modelyard.tasks import config_from_dict, get_task

    config = config_from_dict({"name": "m", "task": task, "data": {"train": "a.csv", **data}}, "m.yaml")
    return feedback_rules(get_task(task), config, classifier, "m.yaml")


def test_an_image_and_text_classifier_is_refused_like_an_image_classifier_not_taken_for_text():
    data = {"image_column": "photo", "text_column": "note", "label_column": "framing"}
    with pytest.raises(UserError) as caught:
        _rules("multimodal_classification", data)
    assert "'multimodal_classification' is not one" in caught.value.message
    assert "add the corrected examples" in caught.value.hint and "modelyard monitor" in caught.value.hint


def test_a_text_classifier_learns_feedback_as_text_rows():
    hooked, example = _rules("text_classification", {})
    assert not hooked
    assert example("my card is lost", "lost_card") == {"text": "my card is lost", "label": "lost_card"}


def test_a_detector_is_refused_without_a_promise_of_live_accuracy():
    with pytest.raises(UserError) as caught:
        _rules("object_detection", {"classes": ["raccoon"]})
    assert "'object_detection' is not one" in caught.value.message
    assert caught.value.hint.startswith("train a new version on fresh data") and "accuracy" not in caught.value.hint


@pytest.mark.parametrize(("task", "answer"), [("object_detection", "boxes"), ("speech_recognition", "transcripts")])
def test_feedback_on_boxes_or_transcripts_is_refused_as_not_labels(task, answer):
    from modelyard.tasks import get_task

    with pytest.raises(DataError, match=rf"answers are {answer}|answers are not labels \({answer}\)"):
        get_task(task).feedback_label(None, "raccoon")
