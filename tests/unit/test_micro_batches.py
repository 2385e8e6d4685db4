"""Long training batches run in parts (micro-batches) with the whole batch's gradient, and a frozen word-embedding
matrix gets no optimizer state: the two things that keep fine-tuning multilingual-e5-small within 3 GB."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from transformers import BertConfig, BertModel

from modelyard.learners.text import TextClassifierLearner, freeze_word_embeddings
from modelyard.learners.text_inputs import split_rows
from modelyard.models.encoder_classifier import EncoderClassifier
from modelyard.protocols import SplitsBatches
from modelyard.training.loop import _backward


def _learner(vocab: int = 100, micro_batch_tokens: int = 4096) -> TextClassifierLearner:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,  # the same function on every pass, so gradients compare exactly
        attention_probs_dropout_prob=0.0,
    )
    module = EncoderClassifier(BertModel(config), 16, 3, dropout=0.0).train()
    options = SimpleNamespace(
        label_smoothing=0.1,
        head_lr_multiplier=20.0,
        layer_decay=1.0,
        head_init="random",
        micro_batch_tokens=micro_batch_tokens,
    )
    spec = {"kind": "hf", "backbone": "tiny-bert", "max_length": 64}
    return TextClassifierLearner(module, SimpleNamespace(pad_token_id=0), ["a", "b", "c"], spec, options)


def _batch(rows: int, width: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 100, (rows, width), generator=generator)
    mask = torch.ones_like(ids)
    mask[rows // 2 :, width // 2 :] = 0  # the second half of the rows is padded to half the width
    ids[mask == 0] = 0
    weight = torch.linspace(0.5, 1.0, rows)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(rows) % 3, "weight": weight}


def _gradients(learner: TextClassifierLearner) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in learner.module.parameters() if p.grad is not None]
    learner.module.zero_grad(set_to_none=True)
    return grads


def test_a_long_batch_is_cut_into_near_equal_parts_within_the_token_budget_and_trimmed_to_their_rows():
    batch = _batch(10, 32)
    parts = split_rows(batch, 96)  # 3 rows of 32 tokens per part at most: 4 parts, of 3, 3, 3 and 1 rows
    assert [len(p["labels"]) for p, _ in parts] == [3, 3, 3, 1]
    assert [share for _, share in parts] == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert [p["input_ids"].shape[1] for p, _ in parts] == [32, 32, 16, 16]  # rows 5-9 hold 16 real tokens
    assert torch.equal(torch.cat([p["weight"] for p, _ in parts]), batch["weight"])
    assert split_rows(batch, 320)[0][0] is batch


def test_the_loop_gives_a_split_batch_the_whole_batch_gradient_and_loss():
    learner, batch = _learner(micro_batch_tokens=10_000), _batch(10, 32)
    accelerator = Accelerator(cpu=True)
    whole = _backward(learner, batch, accelerator, learner.module)
    held = _gradients(learner)
    learner.options.micro_batch_tokens = 96
    assert isinstance(learner, SplitsBatches) and len(learner.micro_batches(batch)) == 4
    split = _backward(learner, batch, accelerator, learner.module)
    parted = _gradients(learner)
    assert split.item() == pytest.approx(whole.item(), rel=1e-6)
    assert len(held) == len(parted)
    for a, b in zip(held, parted, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_few_shot_pair_batches_are_not_split():
    batch = {k: v for k, v in _batch(4, 32).items() if k in ("input_ids", "attention_mask")}
    batch["same"] = torch.tensor([1, 0])  # rows [:2] pair with rows [2:]
    assert _learner(micro_batch_tokens=64).micro_batches(batch) == [(batch, 1.0)]


def test_a_frozen_word_embedding_matrix_gets_no_optimizer_state():
    learner = _learner(vocab=5000)  # the matrix (80k values) is most of this encoder, as in multilingual-e5-small
    embeddings = learner.module.encoder.get_input_embeddings().weight
    assert freeze_word_embeddings(learner.module.encoder, None, added=0) is True
    optimizer = torch.optim.AdamW(learner.param_groups(1e-3, 0.01))
    learner.loss(_batch(4, 8)).backward()
    optimizer.step()
    assert embeddings.grad is None
    assert all(p is not embeddings for group in optimizer.param_groups for p in group["params"])
    assert embeddings not in optimizer.state and len(optimizer.state) > 0
