"""What keeps fine-tuning a pretrained text encoder within a few GB: long batches recompute activations instead of
holding them (same gradients), and the best-weights snapshot shares frozen parameters instead of copying them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from modelyard.learners import text
from modelyard.learners.text import TextClassifierLearner
from modelyard.models.encoder_classifier import EncoderClassifier
from modelyard.training.loop import _snapshot


def _learner() -> TextClassifierLearner:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    module = EncoderClassifier(BertModel(config), 16, 3).train()
    options = SimpleNamespace(label_smoothing=0.0)
    spec = {"kind": "hf", "backbone": "tiny-bert", "max_length": 64}
    return TextClassifierLearner(module, SimpleNamespace(pad_token_id=0), ["a", "b", "c"], spec, options)


def _batch(rows: int, width: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 100, (rows, width), generator=generator)
    mask = torch.ones_like(ids)
    mask[rows // 2 :, width // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(rows) % 3}


def _gradients(learner: TextClassifierLearner, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    learner.module.zero_grad()
    torch.manual_seed(2)  # the same dropout masks: recomputation replays the saved RNG state
    learner.loss(batch).backward()
    return [p.grad.clone() for p in learner.module.parameters() if p.grad is not None]


def test_only_batches_over_the_token_budget_recompute_activations(monkeypatch):
    monkeypatch.setattr(text, "RECOMPUTE_TOKENS", 64)
    learner = _learner()
    learner.loss(_batch(4, 8))  # 32 tokens
    assert not learner.module.encoder.is_activation_checkpointing
    learner.loss(_batch(4, 32))  # 128 tokens
    assert learner.module.encoder.is_activation_checkpointing
    learner.loss(_batch(2, 8))
    assert not learner.module.encoder.is_activation_checkpointing


def test_recomputing_activations_gives_the_same_gradients(monkeypatch):
    learner, batch = _learner(), _batch(4, 32)
    monkeypatch.setattr(text, "RECOMPUTE_TOKENS", 10_000)
    held = _gradients(learner, batch)
    monkeypatch.setattr(text, "RECOMPUTE_TOKENS", 64)
    recomputed = _gradients(learner, batch)
    assert learner.module.encoder.is_activation_checkpointing
    assert len(held) == len(recomputed)
    for a, b in zip(held, recomputed, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_the_best_weights_snapshot_copies_what_trains_and_shares_what_is_frozen():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2), nn.BatchNorm1d(2))
    model[0].weight.requires_grad_(False)
    snapshot = _snapshot(model)
    assert snapshot["0.weight"].data_ptr() == model[0].weight.data_ptr()
    with torch.no_grad():
        model[1].weight.add_(1.0)
        model[2].running_mean.add_(1.0)
    assert not torch.equal(snapshot["1.weight"], model[1].weight)
    assert not torch.equal(snapshot["2.running_mean"], model[2].running_mean)
    model.load_state_dict(snapshot)
    assert torch.equal(model[1].weight, snapshot["1.weight"])


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_attention_dropout_is_the_configured_one(dropout):
    from modelyard.models import catalog
    from modelyard.tasks.text_classification import TextModelConfig

    options = TextModelConfig(backbone="minilm-l6", attention_dropout=dropout)
    learner = TextClassifierLearner.pretrained(catalog.locate("minilm-l6"), "minilm-l6", options, ["a", "b"], ["hi"])
    assert learner.module.encoder.encoder.layer[0].attention.self.dropout.p == dropout
