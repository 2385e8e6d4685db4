"""Direct preference optimisation (DPO) of a pretrained chat model with LoRA, on the shared training loop.

A pair is {"messages": the conversation up to the user's last turn, "chosen": answer, "rejected": answer}.
The loss is sigmoid DPO (Rafailov et al., 2023):

    -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

where log pi(x) sums the log-probabilities of the answer's tokens (and its end-of-turn token) after the prompt.
The reference is the starting model, scored once on every training pair before the first step (what TRL calls
`precompute_ref_log_probs`): no second copy of the model is held, and the reference is the champion as it is
served, also when training continues the champion's own LoRA adapter (where "adapter off" would be the raw base).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modelyard.errors import BundleError, ConfigError, DataError
from modelyard.learners.lora import IGNORE, CausalLMLearner, _with_lora, encode_example
from modelyard.models import causal_lm

PAIRS_PER_BATCH = 8  # pairs scored together outside training (16 sequences)


def trainable_champion(directory: Path, manifest: dict[str, Any], options: Any) -> CausalLMLearner:
    """A chat bundle ready to train further: an adapter bundle keeps its LoRA adapter apart and trainable (loading
    for serving merges it); a merged bundle gets a new adapter from `options.lora` and is saved merged again."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    if options.lora is None:
        raise ConfigError(
            "preference tuning trains a LoRA adapter: the config has model.lora: null",
            "set model.lora (e.g. {r: 16, alpha: 32}) in the config you retrain with",
        )
    if (directory / "config.json").is_file():
        model, tokenizer = causal_lm.load(str(directory))
        merged = options.model_copy(update={"merge": True})
        return CausalLMLearner(_with_lora(model, options.lora), tokenizer, manifest.get("base_model", ""), merged)
    base = manifest.get("base_model")
    if not base or not (directory / "adapter_config.json").is_file():
        raise BundleError(f"{directory}: neither merged weights (config.json) nor a LoRA adapter")
    model, tokenizer = causal_lm.load(base)
    config = LoraConfig(**json.loads((directory / "adapter_config.json").read_text(encoding="utf-8")))
    model = get_peft_model(model, config)
    set_peft_model_state_dict(model, load_file(directory / "model.safetensors"))
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "lora_" in name
    return CausalLMLearner(model, tokenizer, base, options.model_copy(update={"merge": False}))


def encode_pair(policy: CausalLMLearner, pair: dict[str, Any]) -> dict[str, Any] | None:
    """Token ids of prompt + chosen and prompt + rejected, labels on the final answer only (earlier assistant
    turns of the conversation are context); None when either side is longer than `max_length` (an answer cut
    short would be scored as if it ended there)."""
    sides = {}
    limit = policy.options.max_length
    for side in ("chosen", "rejected"):
        chat = {"messages": [*pair["messages"], {"role": "assistant", "content": pair[side]}]}
        ids, labels = encode_example(policy.tokenizer, chat, limit + 1)  # one more token tells a cut one apart
        if len(ids) > limit:
            return None
        last_context = max(i for i, t in enumerate(labels) if t == IGNORE)
        sides[side] = {"input_ids": ids, "labels": [IGNORE] * (last_context + 1) + labels[last_context + 1 :]}
    return sides


def _collate_pairs(policy: CausalLMLearner, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """One batch of 2B rows: the B chosen answers, then the B rejected ones (they share the system prompt,
    which `_token_losses` then runs once)."""
    return policy.collate([it["chosen"] for it in items] + [it["rejected"] for it in items])


def sequence_logprobs(policy: CausalLMLearner, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probability of each row's target tokens, (rows,)."""
    counts = (batch["labels"][:, 1:] != IGNORE).sum(1)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    losses = policy.token_losses(batch)
    return torch.zeros(len(counts), device=losses.device, dtype=losses.dtype).index_add(0, rows, -losses)


def pair_logprobs(policy: CausalLMLearner, encoded: list[dict[str, Any]]) -> np.ndarray:
    """(pairs, 2): log pi(chosen), log pi(rejected) of every encoded pair, in eval mode without gradients."""
    out = np.zeros((len(encoded), 2))
    was_training = policy.module.training
    policy.module.eval()
    device = next(policy.module.parameters()).device
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=policy.precision == "bf16")
    with torch.inference_mode(), autocast:
        for start in range(0, len(encoded), PAIRS_PER_BATCH):
            chunk = encoded[start : start + PAIRS_PER_BATCH]
            batch = {k: v.to(device) for k, v in _collate_pairs(policy, chunk).items()}
            logps = sequence_logprobs(policy, batch).double().cpu().numpy()
            out[start : start + len(chunk)] = np.stack([logps[: len(chunk)], logps[len(chunk) :]], axis=1)
    policy.module.train(was_training)
    return out


def preference_scores(policy: np.ndarray, reference: np.ndarray | None, beta: float) -> dict[str, Any]:
    """Scores of held-out pairs. `preference_accuracy`: share of pairs whose chosen answer is more likely than the
    rejected one. Against a reference: `win_rate`, the share with a positive implicit reward margin (the policy
    moved towards the chosen answer more than towards the rejected one), the mean margin and the DPO loss."""
    scores: dict[str, Any] = {
        "pairs": len(policy),
        "preference_accuracy": float(np.mean(policy[:, 0] > policy[:, 1])) if len(policy) else 0.0,
    }
    if reference is not None and len(policy):
        margin = beta * ((policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1]))
        scores.update(
            win_rate=float(np.mean(margin > 0)),
            reward_margin=float(np.mean(margin)),
            dpo_loss=float(np.mean(np.logaddexp(0.0, -margin))),
        )
    return scores


class PreferenceLearner:
    """What `training.loop.fit` needs to train `policy` with DPO: pair batches (with the reference's
    log-probabilities, computed when the dataset is built) and the loss. The loop's module and precision are the
    policy's own."""

    def __init__(self, policy: CausalLMLearner, beta: float) -> None:
        self.policy = policy
        self.beta = beta
        self.trained = 0  # pairs of the training set that fit in max_length: those trained on
        self.skipped = 0  # pairs of the training set longer than max_length, left out

    @property
    def module(self) -> torch.nn.Module:
        return self.policy.module

    @module.setter
    def module(self, value: torch.nn.Module) -> None:
        self.policy.module = value

    @property
    def precision(self) -> str:
        return self.policy.precision

    @precision.setter
    def precision(self, value: str) -> None:
        self.policy.precision = value

    def train_defaults(self) -> dict[str, Any]:
        return self.policy.train_defaults()

    def finish_training(self) -> bool:
        return self.policy.finish_training()  # the challenger's test loss is scored as it will be loaded

    def dataset(self, pairs: list[dict[str, Any]], training: bool) -> list[dict[str, Any]]:
        """Encoded pairs, each with the reference (the model as it is now, before any step) log-probabilities;
        those longer than max_length are left out (counted for the training set)."""
        encoded = [e for e in (encode_pair(self.policy, p) for p in pairs) if e is not None]
        if training:
            self.trained, self.skipped = len(encoded), len(pairs) - len(encoded)
        if pairs and not encoded:
            raise DataError(
                f"all {len(pairs)} preference pairs are longer than model.max_length {self.policy.options.max_length} "
                "tokens: nothing to train on",
                "raise model.max_length in the config you retrain with",
            )
        reference = pair_logprobs(self.policy, encoded)
        return [{**e, "reference": ref} for e, ref in zip(encoded, reference.tolist(), strict=True)]

    def lengths(self, dataset: list[dict[str, Any]]) -> list[int]:
        return [max(len(it["chosen"]["input_ids"]), len(it["rejected"]["input_ids"])) for it in dataset]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {**_collate_pairs(self.policy, items), "reference": torch.tensor([it["reference"] for it in items])}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logps = sequence_logprobs(self.policy, batch).float()  # (2B,)
        half = len(logps) // 2
        reference = batch["reference"].float()  # (B, 2)
        logits = self.beta * ((logps[:half] - reference[:, 0]) - (logps[half:] - reference[:, 1]))
        return -F.logsigmoid(logits).mean()
