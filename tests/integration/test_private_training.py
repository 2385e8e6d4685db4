"""`train.privacy` end to end: a MiniLM text classifier and a tabular MLP train with DP-SGD and report the spent
(epsilon, delta) in metrics.json and the model card; what DP-SGD cannot account for is refused by `validate`
(exit 1, naming the field) exactly as `train` refuses it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import write_config

import modelyard
from modelyard.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PRIVATE = "train.privacy={epsilon: 8, delta: 1.0e-4, max_grad_norm: 1.0}"


def validate(monkeypatch, capsys, config: Path, *overrides: str) -> tuple[int, str]:
    from modelyard import cli

    argv = ["modelyard", "validate", str(config), *[f"--set={o}" for o in overrides]]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code or 0, capsys.readouterr().err


@pytest.fixture
def credit(tmp_path) -> Path:
    shutil.copy(EXAMPLES / "credit_scoring.yaml", tmp_path / "credit.yaml")
    shutil.copytree(EXAMPLES / "data" / "credit_default", tmp_path / "data" / "credit_default")
    return tmp_path / "credit.yaml"


@pytest.mark.slow  # MiniLM through the whole pipeline (baseline, drift reference, bundle): about a minute
def test_a_tiny_text_classifier_trains_privately_within_its_budget(banking_slice, tmp_path):
    config = write_config(banking_slice, "minilm-l6", batch_size=16, learning_rate=1e-3)
    overrides = [PRIVATE, "model.max_length=32"]
    model = modelyard.train(config, output=tmp_path / "text", overrides=overrides, quiet=True, track=False)
    spent = json.loads((model.path / "metrics.json").read_text())["privacy"]
    assert 0 < spent["epsilon"] <= 8 and spent["delta"] == 1e-4
    assert spent["sampling"] == "poisson" and spent["noise_multiplier"] > 0 and spent["steps"] > 0
    card = (model.path / "MODEL_CARD.md").read_text()
    assert "## Privacy" in card and f"ε = {spent['epsilon']:.4g}" in card
    assert len(model.predict(["I lost my card"])) == 1


def test_only_the_head_and_the_top_encoder_layers_train_privately():
    from transformers import AutoConfig, AutoModel

    from modelyard.learners.text_private import train_top_layers
    from modelyard.models import catalog
    from modelyard.models.encoder_classifier import EncoderClassifier

    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(catalog.locate("minilm-l6"))))
    module = EncoderClassifier(encoder, encoder.config.hidden_size, 3)
    train_top_layers(module, 2)
    trainable = {n.split(".layer.")[-1].split(".")[0] for n, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"4", "5", "head"}


def test_a_tiny_tabular_mlp_trains_privately_within_its_budget(credit, tmp_path):
    overrides = [PRIVATE, "model.backbone=mlp", "model.norm=layer", "data.max_rows=800", "train.epochs=2"]
    overrides += ["train.batch_size=32", "train.learning_rate=0.003"]
    model = modelyard.train(credit, output=tmp_path / "mlp", overrides=overrides, quiet=True, track=False)
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert 0 < metrics["privacy"]["epsilon"] <= 8 and metrics["privacy"]["delta"] == 1e-4
    assert 0 <= metrics["test"]["roc_auc"] <= 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["model.backbone=mlp", "model.norm=batch"], "model.norm batch"),
        (["model.norm=layer"], "model.backbone auto"),
        (["model.backbone=mlp", "model.norm=layer", "train.gradient_accumulation=2"], "train.gradient_accumulation"),
        (["model.backbone=mlp", "model.norm=layer", "train.privacy.delta=0.01"], "train.privacy.delta"),
        (["model.backbone=mlp", "model.norm=layer", "train.batch_size=5000"], "train.batch_size 5000"),
        (["model.backbone=mlp", "model.norm=layer", "data.max_rows=400"], "train.batch_size 512"),  # its default
        (["model.backbone=mlp", "model.norm=layer", "train.privacy.epsilon=1.0e-9"], "cannot be reached"),
    ],
)
def test_validate_refuses_what_dp_sgd_cannot_account_for_naming_the_field(
    credit, monkeypatch, capsys, overrides, field
):
    code, err = validate(monkeypatch, capsys, credit, PRIVATE, *overrides)
    assert code == 1 and field in err and "train.privacy" in err and "Traceback" not in err


def test_train_refuses_batch_norm_as_validate_does(credit, tmp_path):
    overrides = [PRIVATE, "model.backbone=mlp", "model.norm=batch"]
    with pytest.raises(ConfigError, match=r"model\.norm batch"):
        modelyard.train(credit, output=tmp_path / "refused", overrides=overrides, quiet=True, track=False)
    assert not (tmp_path / "refused" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("backbone", "overrides", "field"),
    [
        ("tfidf-linear", [], "model.backbone tfidf-linear"),
        ("minilm-l6", ["model.head_init=linear_probe"], "model.head_init"),
        ("minilm-l6", ["train.precision=bf16"], "train.precision"),
        ("minilm-l6", ["data.label_noise={action: drop}"], "data.label_noise.action drop"),
        ("minilm-l6", ["data.label_noise={action: weight}"], "data.label_noise.action weight"),
    ],
)
def test_text_settings_that_learn_outside_dp_sgd_are_refused(
    banking_slice, monkeypatch, capsys, backbone, overrides, field
):
    code, err = validate(monkeypatch, capsys, write_config(banking_slice, backbone), PRIVATE, *overrides)
    assert code == 1 and field in err and "Traceback" not in err


def test_train_refuses_label_noise_filtering_as_validate_does_and_both_allow_the_report(
    banking_slice, monkeypatch, capsys, tmp_path
):
    config = write_config(banking_slice, "minilm-l6")
    with pytest.raises(ConfigError, match=r"train\.privacy.*data\.label_noise\.action drop"):
        overrides = [PRIVATE, "data.label_noise={action: drop}"]
        modelyard.train(config, output=tmp_path / "refused", overrides=overrides, quiet=True, track=False)
    assert validate(monkeypatch, capsys, config, PRIVATE, "data.label_noise={action: report}")[0] == 0


def test_a_bert_encoder_folder_passes_the_layer_check_validate_runs():
    from modelyard.learners.text_private import layer_problems
    from modelyard.models import catalog

    assert layer_problems(catalog.locate("minilm-l6"), 2) == []


def test_train_with_several_processes_is_refused_before_any_process_starts(credit, monkeypatch, capsys):
    from modelyard import cli

    argv = ["modelyard", "train", str(credit), f"--set={PRIVATE}", "--set=model.backbone=mlp", "--nproc", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        cli.main()
    err = capsys.readouterr().err
    assert done.value.code == 1 and "--nproc" in err and "train.privacy" in err and "Traceback" not in err
