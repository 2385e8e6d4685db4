"""What `retrain` says about a task it cannot learn from feedback: which tasks it can, and what to do instead."""

from __future__ import annotations

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
