"""The learner for a GPT trained from scratch on a corpus: random context windows in, next-token loss out."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from tokenizers import Tokenizer

from modelyard.data.text_corpus import render_plain
from modelyard.errors import DataError
from modelyard.fsutil import atomic_path, atomic_write_text
from modelyard.generation.decoders import GPTDecoder
from modelyard.generation.generator import Prompt, TextGenerator
from modelyard.generation.options import GenerationOptions
from modelyard.models import lm_tokenizer
from modelyard.models.gpt import GPT, GPTConfig

EVAL_WINDOWS = 4096  # evaluation reads at most this many context windows of a split


def _text(item: str | dict) -> str:
    return item if isinstance(item, str) else render_plain(item["messages"])


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `block + 1` tokens, one per `block` tokens of the stream, shifted at random in training."""

    def __init__(self, tokens: torch.Tensor, block: int, training: bool) -> None:
        self.tokens, self.block, self.training = tokens, block, training
        self.last_start = len(tokens) - block - 1

    def __len__(self) -> int:
        return max(1, self.last_start // self.block + 1)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start = i * self.block
        if self.training:
            start += int(torch.randint(self.block, ()))
        window = self.tokens[min(start, self.last_start) :][: self.block + 1]
        return {"input_ids": window[:-1], "targets": window[1:]}


class GPTLearner:
    def __init__(self, model: GPT, tokenizer: Tokenizer, generation: GenerationOptions) -> None:
        self.module: GPT = model
        self.backbone = "gpt-scratch"
        self.precision = "fp32"
        self.tokenizer = tokenizer
        self.codec = lm_tokenizer.Codec(tokenizer)
        self.generator = TextGenerator(GPTDecoder(model, {self.codec.eot_id}), self.codec, render_plain, generation)
        self._streams: list[tuple[list, torch.Tensor]] = []  # encoded splits, keyed by identity
        self._last_eval: tuple[tuple[int, int], list, dict[str, Any]] | None = None

    @classmethod
    def scratch(cls, options: Any, train: list[str | dict]) -> GPTLearner:
        tokenizer = lm_tokenizer.train([_text(t) for t in train], options.tokenizer, options.vocab_size)
        cfg = GPTConfig(
            vocab_size=tokenizer.get_vocab_size(),
            block_size=options.context,
            n_layer=options.layers,
            n_head=options.heads,
            n_embd=options.hidden_size,
            dropout=options.dropout,
        )
        return cls(GPT(cfg), tokenizer, options.generation)

    @classmethod
    def load(cls, directory: Path, options: Any) -> GPTLearner:
        spec = json.loads((directory / "gpt.json").read_text(encoding="utf-8"))
        model = GPT(GPTConfig(**spec))
        load_model(model, directory / "model.safetensors")
        return cls(model.eval(), Tokenizer.from_file(str(directory / "tokenizer.json")), options.generation)

    def train_defaults(self) -> dict[str, Any]:
        """nanoGPT's small-model recipe: high LR, cosine decay after a short warm-up, weight decay 0.1."""
        return {
            "learning_rate": 1e-3,
            "batch_size": 12,
            "scheduler": "cosine",
            "weight_decay": 0.1,
            "epochs": 1,
        }

    def _stream(self, data: list[str | dict]) -> torch.Tensor:
        for items, tokens in self._streams:
            if items is data:
                return tokens
        tokens = torch.tensor(self.codec.encode_corpus([_text(t) for t in data]), dtype=torch.long)
        self._streams = [*self._streams[-3:], (data, tokens)]
        return tokens

    def dataset(self, data: list[str | dict], training: bool) -> WindowDataset:
        tokens = self._stream(data)
        if training and len(tokens) < self.module.config.block_size + 1:
            raise DataError(
                f"the training text has {len(tokens)} tokens, fewer than one context window "
                f"({self.module.config.block_size + 1})",
                "add text or lower model.context",
            )
        return WindowDataset(tokens, min(self.module.config.block_size, len(tokens) - 1), training)

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([it[k] for it in items]) for k in ("input_ids", "targets")}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.module(batch["input_ids"])  # (B, T, vocab)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten())

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """As nanoGPT: matrices decay, biases, norms and embeddings' 1-D parameters do not."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def _weights_version(self) -> int:
        """Changes whenever any parameter is modified in place (optimiser steps, loading a state dict)."""
        return sum(p._version for p in self.module.parameters())

    def evaluate(self, data: list[str | dict]) -> dict[str, Any]:
        """Mean next-token loss over non-overlapping windows of the split, and its perplexity.

        The answer is remembered until the weights change: the trainer asks again for the same weights at the end.
        """
        key = (id(data), self._weights_version())
        if self._last_eval is not None and self._last_eval[0] == key and self._last_eval[1] is data:
            return dict(self._last_eval[2])
        metrics = self._evaluate(data)
        self._last_eval = (key, data, metrics)
        return dict(metrics)

    def _evaluate(self, data: list[str | dict]) -> dict[str, Any]:
        tokens = self._stream(data)
        if len(tokens) < 2:
            return {}
        dataset = WindowDataset(tokens, min(self.module.config.block_size, len(tokens) - 1), training=False)
        windows = range(min(len(dataset), EVAL_WINDOWS))
        was_training = self.module.training
        self.module.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(windows), 64):
                batch = self.collate([dataset[i] for i in windows[start : start + 64]])
                batch = {k: v.to(self.module.wte.weight.device) for k, v in batch.items()}
                logits = self.module(batch["input_ids"]).float()
                total += F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), reduction="sum").item()
                count += batch["targets"].numel()
        self.module.train(was_training)
        loss = total / count
        return {"loss": round(loss, 5), "perplexity": round(math.exp(min(loss, 50.0)), 4), "tokens": count}

    def generate(self, prompt: Prompt, **options: Any) -> str:
        return "".join(self.generate_stream(prompt, **options))

    def generate_stream(self, prompt: Prompt, **options: Any) -> Iterator[str]:
        self.module.eval()
        return self.generator.stream(prompt, **options)

    def predict(self, inputs: list[Prompt], top_k: int = 1) -> list[dict[str, Any]]:
        """The generated continuation of each prompt (`top_k` does not apply to generation)."""
        self.module.eval()
        return self.generator.complete(inputs)

    def save(self, directory: Path) -> dict[str, Any]:
        with atomic_path(directory / "model.safetensors") as tmp:
            save_model(self.module, str(tmp))
        atomic_write_text(directory / "tokenizer.json", self.tokenizer.to_str())
        spec = asdict(self.module.config)
        atomic_write_text(directory / "gpt.json", json.dumps(spec, indent=2) + "\n")
        return {"architecture": spec, "parameters": self.module.num_parameters()}
