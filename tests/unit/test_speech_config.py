"""What `validate` refuses of a speech recognition config before any training: every mistake that would otherwise
surface only after the model is trained."""

from __future__ import annotations

import pandas as pd
import pytest

from modelyard.errors import ConfigError
from modelyard.protocols import PreparedData
from modelyard.tasks.speech_recognition import SpeechModelConfig, SpeechRecognitionTask, check_backbone


@pytest.mark.parametrize("baseline", ["none", "whisper-small"])
def test_an_unknown_baseline_is_refused_naming_the_bundled_ones(baseline):
    with pytest.raises(ConfigError, match=rf"unknown model.baseline '{baseline}'") as caught:
        check_backbone(SpeechModelConfig(baseline=baseline))
    assert "whisper-base, whisper-tiny.en" in caught.value.hint and "null" in caught.value.hint


def test_no_baseline_is_written_null():
    check_backbone(SpeechModelConfig(baseline=None, language="xx"))  # nothing uses the language: nothing to check


@pytest.mark.parametrize(
    "options",
    [
        {"backbone": "ctc-lstm", "baseline": "whisper-base"},
        {"backbone": "whisper-base", "baseline": None},
        {"backbone": "whisper-base", "fine_tune": True, "baseline": None},
    ],
)
def test_a_language_whisper_does_not_know_is_refused_wherever_it_is_used(options):
    with pytest.raises(ConfigError, match=r"model.language: 'xx' is not a language whisper-base knows.*\ben, zh\b"):
        check_backbone(SpeechModelConfig(language="xx", **options))


def test_a_language_code_is_lower_cased_and_an_english_only_model_refuses_others():
    assert SpeechModelConfig(language="EN").language == "en"
    check_backbone(SpeechModelConfig(backbone="whisper-base", language="EN", baseline=None))
    with pytest.raises(ConfigError, match=r"whisper-tiny\.en transcribes English only, not 'zh'"):
        check_backbone(SpeechModelConfig(backbone="whisper-tiny.en", language="zh", baseline=None))


def test_a_baseline_that_fails_after_training_is_a_note_not_a_lost_model(monkeypatch):
    from modelyard.learners import whisper

    def broken(self, data):
        raise ValueError("'xx' is not a valid language code")

    monkeypatch.setattr(whisper.WhisperLearner, "evaluate", broken)
    config = type("Resolved", (), {"model": SpeechModelConfig(baseline="whisper-base")})()
    splits = {n: pd.DataFrame({"path": [], "text": []}) for n in ("train", "validation", "test")}
    found = SpeechRecognitionTask().baselines(config, PreparedData(splits=splits, report={}, fingerprints={}))
    assert found["whisper-base"]["error"].startswith("the baseline failed: ValueError: 'xx' is not a valid")
