"""Fine-tuning a bundled Whisper model on real voices (digit strings from the committed FSDD slice): the model
rebuilt from the CTranslate2 files is trained by the shared loop, scored beside its own zero-shot self, saved,
reloaded with the same transcripts, and served by the OpenAI-shaped transcription route."""

from __future__ import annotations

import json
import shutil

import pytest
from serving_helpers import serving
from speech_helpers import digit_strings, speech_config

import modelyard
from modelyard.errors import BundleError, ConfigError

DIGIT_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


@pytest.fixture(scope="module")
def strings(tmp_path_factory):
    return digit_strings(tmp_path_factory.mktemp("digit-strings"))


@pytest.fixture(scope="module")
def finetuned(strings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper-ft")
    config = speech_config(folder, strings, "whisper-tiny.en", fine_tune=True, baseline="whisper-tiny.en")
    return modelyard.train(config, folder / "bundle", ["train.max_steps=6", "train.learning_rate=3e-5"], quiet=True)


@pytest.mark.slow
def test_fine_tuning_learns_the_transcript_style_and_keeps_zero_shot_accuracy(finetuned, strings):
    metrics = json.loads((finetuned.path / "metrics.json").read_text())
    zero_shot = metrics["baselines"]["whisper-tiny.en"]["test"]["wer"]
    assert metrics["train"]["steps"] == 6 and metrics["test"]["utterances"] == 6
    assert metrics["test"]["wer"] <= max(zero_shot, 0.1)
    # zero-shot Whisper writes "1, 2, 1."; six steps on the training transcripts teach it "one two one"
    files = sorted(strings["test"].parent.glob("*.wav"))
    texts = [answer["text"] for answer in finetuned.predict([str(f) for f in files])]
    assert all(set(text.split()) <= DIGIT_WORDS for text in texts), texts
    report = json.loads((finetuned.path / "data_report.json").read_text())
    assert "fine-tuned on this data" in report["backbone"] and "above 4000 Hz dropped" in report["backbone"]


@pytest.mark.slow
def test_a_reloaded_bundle_and_the_server_give_the_same_transcripts(finetuned, strings):
    file = strings["test"].parent / "00001_theo.wav"
    direct = finetuned.predict([str(file)])[0]["text"]
    assert modelyard.load(finetuned.path).predict([str(file)])[0]["text"] == direct
    with serving(finetuned.path) as client:
        answer = client.post(
            "/v1/audio/transcriptions", files={"file": ("a.wav", file.read_bytes(), "audio/wav")}, data={"model": "x"}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == direct


@pytest.mark.slow
def test_the_int8_export_transcribes_the_same_and_is_smaller(finetuned, tmp_path):
    from modelyard.export.exporter import export

    result = export(finetuned.path, fmt="torch", quantize="int8", output=tmp_path / "int8", latency_samples=2)
    assert result.passed, result.report
    assert result.report["parity"]["agreement"] == 1.0
    assert result.report["size_mb"]["exported"] < result.report["size_mb"]["original"]
    assert modelyard.load(result.path).learner.precision == "fp32"  # dynamic int8 kernels take fp32 activations


@pytest.mark.slow
def test_weights_that_do_not_fit_are_a_clear_error(finetuned, tmp_path):
    from safetensors.torch import load_file, save_file

    from modelyard.learners.whisper_finetune import WhisperFineTuneLearner

    copy = tmp_path / "bundle"
    shutil.copytree(finetuned.path, copy)
    tensors = load_file(str(copy / "model.safetensors"))
    tensors.pop("whisper.model.decoder.layer_norm.weight")
    save_file(tensors, str(copy / "model.safetensors"))
    with pytest.raises(BundleError, match="checksum mismatch"):  # the bundle's manifest notices first
        modelyard.load(copy)
    with pytest.raises(BundleError, match="do not fit"):  # and the learner, should the manifest agree
        WhisperFineTuneLearner.load(copy)


def test_a_language_whisper_does_not_know_is_refused_by_validate(strings, tmp_path):
    config = speech_config(tmp_path, strings, "whisper-base", fine_tune=True, language="xx")
    with pytest.raises(ConfigError, match="'xx' is not a language whisper-base knows"):
        modelyard.validate(config)


def test_fine_tuning_a_model_trained_from_scratch_is_refused(strings, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.fine_tune is for the pretrained Whisper backbones"):
        modelyard.validate(speech_config(tmp_path, strings, "ctc-lstm", fine_tune=True))
