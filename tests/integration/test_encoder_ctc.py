"""The LSTM-CTC recogniser on a frozen pretrained Whisper encoder, on real voices (digit strings from the committed
FSDD slice): what `validate` refuses, training on the encoder's cached states, a frozen encoder, a bundle that
reloads with the same transcripts, and an ONNX export that keeps them."""

from __future__ import annotations

import json

import pytest
import torch
from speech_helpers import digit_strings, speech_config

import modelyard
from modelyard.errors import ConfigError, ModelNotFoundError
from modelyard.models.whisper_encoder import encoder_state, pretrained_encoder

ENCODER = "whisper-tiny.en"


@pytest.fixture(scope="module")
def strings(tmp_path_factory):
    return digit_strings(tmp_path_factory.mktemp("digit-strings"))


@pytest.fixture(scope="module")
def trained(strings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder-ctc")
    config = speech_config(folder, strings, encoder=ENCODER, conv_channels=64, hidden_size=64)
    sets = ["train.max_steps=150", "train.learning_rate=5e-3", "train.batch_size=8", "train.early_stopping=null"]
    return modelyard.train(config, folder / "bundle", sets, quiet=True)


def test_the_lstm_learns_to_transcribe_on_the_frozen_encoder(trained):
    metrics = json.loads((trained.path / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 150
    assert metrics["validation"]["wer"] < 0.5, metrics["validation"]  # untrained: 1.0 (nothing or noise)
    report = json.loads((trained.path / "data_report.json").read_text())
    assert f"frozen pretrained encoder of {ENCODER}" in report["backbone"] and "above 4000 Hz" in report["backbone"]
    _, variables = pretrained_encoder(ENCODER)
    pretrained = encoder_state(variables, 1500)
    saved = trained.learner.module.encoder.encoder.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in pretrained.items())  # the encoder was not trained


def test_a_reloaded_bundle_gives_the_same_transcripts(trained, strings):
    files = [str(p) for p in sorted(strings["test"].parent.glob("*.wav"))]
    direct = [a["text"] for a in trained.predict(files)]
    assert [a["text"] for a in modelyard.load(trained.path).predict(files)] == direct
    assert any(direct)


def test_the_onnx_export_keeps_the_transcripts(trained, tmp_path):
    from modelyard.export.exporter import export

    result = export(str(trained.path), "onnx", output=tmp_path / "onnx", latency_samples=3)
    assert result.passed and result.report["parity"]["agreement"] >= 0.98, result.report
    assert "wer" in modelyard.load(tmp_path / "onnx").evaluate()


@pytest.mark.parametrize(
    "model, error, message",
    [
        ({"encoder": ENCODER, "vtlp": 0.2}, ConfigError, "model.vtlp is not used with model.encoder"),
        ({"encoder": ENCODER, "noise_snr_db": [5, 20]}, ConfigError, "model.noise_snr_db is not used"),
        ({"backbone": ENCODER, "encoder": ENCODER}, ConfigError, "model.encoder is a front end for ctc-lstm"),
        ({"encoder": "whisper-large"}, ModelNotFoundError, "unknown model.encoder 'whisper-large'"),
    ],
)
def test_validate_refuses_what_an_encoder_cannot_use(strings, tmp_path, model, error, message):
    with pytest.raises(error, match=message):
        modelyard.validate(speech_config(tmp_path, strings, **model))
