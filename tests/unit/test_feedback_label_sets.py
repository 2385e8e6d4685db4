"""Which label of a correction the model does not know: a plain label, each label of a set, each span's type."""

from __future__ import annotations

from modelyard.monitoring.feedback import model_label, unknown_label


def test_a_label_set_names_its_first_unknown_label():
    assert unknown_label(["joy", "jolly", "glee"], {"joy", "love"}, structured=True) == "jolly"
    assert unknown_label(["joy", "love"], {"joy", "love"}, structured=True) is None
    assert unknown_label([], {"joy"}, structured=True) is None  # "no label applies"


def test_entity_spans_name_their_first_unknown_type():
    spans = [{"start": 0, "end": 4, "label": "PER"}, {"start": 9, "end": 13, "label": "ORG"}]
    assert unknown_label(spans, {"PER", "LOC"}, structured=True) == "ORG"


def test_a_list_is_no_label_of_a_single_label_classifier():
    assert unknown_label(["joy"], {"joy"}, structured=False) == ["joy"]
    assert unknown_label("joy", {"joy"}, structured=False) is None


def test_a_plain_label_is_matched_to_the_models_class_as_evaluate_matches_it():
    labels = ["0", "1"]
    assert [model_label(v, labels) for v in (1, 1.0, "1.0", " 1", "1")] == ["1"] * 5
    assert model_label(7, labels) == 7 and model_label("yes", ["no", "yes"]) == "yes"
    assert model_label("1", ["0.0", "1.0"]) == "1.0"  # a model trained before labels were read as categories
