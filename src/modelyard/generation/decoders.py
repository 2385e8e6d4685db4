"""`Decoder` adapters: our GPT with its KVCache, and any Hugging Face causal LM with a DynamicCache.

Prompts of different lengths are left-padded so every row's next token sits in the last column; the padding is
masked out and positions count real tokens only, so a padded row computes what it would compute alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from modelyard.models import low_bit
from modelyard.models.gpt import GPT, KVCache

DecodeWeights = Literal["int4", "float"]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) token ids and (B, T) bool mask of real tokens, padded on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = True
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counting only real tokens (padding gets 0)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class GPTDecoder:
    """Decoding for `models.gpt.GPT`; past the context window it re-reads the last 3/4 of a window."""

    def __init__(self, model: GPT, eos_ids: set[int], pad_id: int = 0) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self.max_context = None

    def start(self, prompts: Sequence[Sequence[int]]) -> GPTSession:
        return GPTSession(self, [list(p) or [next(iter(self.eos_ids))] for p in prompts])


class GPTSession:
    def __init__(self, decoder: GPTDecoder, prompts: list[list[int]]) -> None:
        self.model = decoder.model
        self.pad_id = decoder.pad_id
        self.block = self.model.config.block_size
        self.device = self.model.wte.weight.device
        self.history = prompts
        self._prefill(keep=self.block)

    def _prefill(self, keep: int) -> None:
        ids, mask = left_pad([h[-keep:] for h in self.history], self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        self.pos = positions(mask)
        self.cache = KVCache.empty(self.model.config.n_layer)
        self._logits = self.model(ids, pos=self.pos, cache=self.cache, mask=mask)[:, -1, :]
        self.pos = self.pos[:, -1]  # (B,) position of the last token of each row

    def logits(self) -> torch.Tensor:
        return self._logits

    def advance(self, tokens: torch.Tensor) -> None:
        for h, t in zip(self.history, tokens.tolist(), strict=True):
            h.append(t)
        if self.cache.length + 1 > self.block or int(self.pos.max()) + 1 >= self.block:
            self._prefill(keep=self.block * 3 // 4)
            return
        self.pos = self.pos + 1
        tokens = tokens.to(self.device)
        self._logits = self.model(tokens[:, None], pos=self.pos[:, None], cache=self.cache)[:, -1, :]

    def keep(self, rows: torch.Tensor) -> None:
        self.history = [self.history[i] for i in rows.tolist()]
        rows = rows.to(self.device)
        self.cache = self.cache.select(rows)
        self.pos = self.pos.index_select(0, rows)
        self._logits = self._logits.index_select(0, rows)


class HFDecoder:
    """Decoding for a transformers causal LM (e.g. SmolLM2) through its own KV cache.

    With `weights="int4"` it decodes with a weight-only int4 copy of the model (`models.low_bit`; ~3x fewer bytes
    read per token than fp32 in our measurements) where that applies: a plain model on the CPU. The copy is rebuilt
    when the float weights change (training steps bump their version counters), so it never decodes stale weights.
    """

    def __init__(
        self, model: torch.nn.Module, eos_ids: set[int], pad_id: int, weights: DecodeWeights = "float"
    ) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self.weights = weights
        self.max_context = getattr(model.config, "max_position_embeddings", None)
        self._fast: tuple[tuple[tuple[int, int], ...], torch.nn.Module] | None = None

    def start(self, prompts: Sequence[Sequence[int]]) -> HFSession:
        return HFSession(self.decoding_model(), [list(p) or [self.pad_id] for p in prompts], self.pad_id)

    def decoding_model(self) -> torch.nn.Module:
        """The float model, or its int4 copy (built once per state of the float weights)."""
        if self.weights == "float" or not _quantizable(self.model):
            return self.model
        key = tuple((id(p), p._version) for p in self.model.parameters())
        if self._fast is None or self._fast[0] != key:
            self._fast = None  # free the stale copy before building the next
            self._fast = (key, low_bit.quantize(self.model, self.model.get_output_embeddings()))
        return self._fast[1]


def _quantizable(model: torch.nn.Module) -> bool:
    """int4 decoding needs torch's CPU kernels and a plain model (a LoRA-wrapped one decodes in float)."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    wrapped = any(type(m).__module__.startswith("peft") for m in model.modules())
    return on_cpu and not wrapped and low_bit.available()


class HFSession:
    def __init__(self, model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_id: int) -> None:
        from transformers import DynamicCache

        self.model = model
        self.device = next(self.model.parameters()).device
        ids, self.mask = left_pad(prompts, pad_id)
        ids, self.mask = ids.to(self.device), self.mask.to(self.device)
        self.pos = positions(self.mask)
        self.cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask.long(),
            position_ids=self.pos,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._logits = out.logits[:, -1, :]
        self.pos = self.pos[:, -1:]  # (B, 1)

    def logits(self) -> torch.Tensor:
        return self._logits

    def advance(self, tokens: torch.Tensor) -> None:
        tokens = tokens.to(self.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        self.pos = self.pos + 1
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask.long(),
            position_ids=self.pos,
            past_key_values=self.cache,
            use_cache=True,
        )
        self._logits = out.logits[:, -1, :]

    def keep(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.device)
        self.cache.batch_select_indices(rows)
        self.mask = self.mask.index_select(0, rows)
        self.pos = self.pos.index_select(0, rows)
        self._logits = self._logits.index_select(0, rows)
