"""A prompt prefix shared by every row of a batch runs once: same losses and gradients as running every row."""

from __future__ import annotations

import pytest
import torch
from llm_helpers import tiny_llama_config

from modelyard.learners import lora as lora_learner
from modelyard.learners.lora import IGNORE, CausalLMLearner, _shared_prefix


def padded(rows: list[list[int]], answer: int) -> dict[str, torch.Tensor]:
    """Right-padded batch whose last `answer` tokens of each row are the targets."""
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        labels[i, len(row) - answer : len(row)] = torch.tensor(row[-answer:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.fixture
def learner() -> CausalLMLearner:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = tiny_llama_config(50, num_attention_heads=4)  # 2 key/value heads: grouped-query attention
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(LlamaForCausalLM(config), lora).eval()
    learner = CausalLMLearner.__new__(CausalLMLearner)  # only the loss is under test: no tokenizer needed
    learner.module, learner._base = model, model.get_base_model()
    return learner


def losses_and_grads(learner: CausalLMLearner, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    learner.module.zero_grad()
    losses = learner._token_losses(batch)
    losses.mean().backward()
    return losses.detach(), [p.grad.clone() for p in learner.module.parameters() if p.requires_grad]


def test_a_shared_prompt_prefix_gives_the_same_losses_and_gradients(learner, monkeypatch):
    prompt = list(range(3, 15))
    batch = padded([[*prompt, 20, 21, 22, 23, 24], [*prompt, 30, 31, 32], [*prompt, 40, 41, 42, 43, 44, 45, 46]], 2)
    assert _shared_prefix(batch["input_ids"], batch["attention_mask"], batch["labels"]) == len(prompt)
    shared, shared_grads = losses_and_grads(learner, batch)
    monkeypatch.setattr(lora_learner, "_shared_prefix", lambda *args: 0)
    full, full_grads = losses_and_grads(learner, batch)
    assert torch.allclose(shared, full, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(shared_grads, full_grads, strict=True))


def test_the_prefix_stops_before_the_first_target_and_needs_two_rows():
    prompt = list(range(3, 15))
    batch = padded([[*prompt, 20, 21], [*prompt, 20, 21]], 5)  # identical rows; targets start inside the prompt
    first_target = len(prompt) + 2 - 5
    assert _shared_prefix(batch["input_ids"], batch["attention_mask"], batch["labels"]) == first_target - 1
    one = {k: v[:1] for k, v in batch.items()}
    assert _shared_prefix(one["input_ids"], one["attention_mask"], one["labels"]) == 0


def test_batches_with_different_openings_run_every_row_whole():
    batch = padded([list(range(3, 20)), list(range(4, 21))], 2)
    assert _shared_prefix(batch["input_ids"], batch["attention_mask"], batch["labels"]) == 0
