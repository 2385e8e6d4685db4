"""The learner for a GPT trained from scratch on a corpus: random context windows in, next-token loss out.

`OnnxGPTLearner` is the same learner answering through an ONNX Runtime session of the whole forward pass.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from tokenizers import Tokenizer
from torch import nn

from modelyard.data.text_corpus import render_plain
from modelyard.errors import DataError
from modelyard.fsutil import atomic_path, atomic_write_text
from modelyard.generation.decoders import GPTDecoder, left_pad, positions
from modelyard.generation.engine import Decoder
from modelyard.generation.generator import Prompt, TextGenerator
from modelyard.generation.options import GenerationOptions
from modelyard.metrics.language_model import perplexity_metrics
from modelyard.models import lm_tokenizer
from modelyard.models.gpt import GPT, GPTConfig, KVCache
from modelyard.runtimes.onnx_session import onnx_session
from modelyard.runtimes.protocol import ONNX_FILE, OnnxGraph
from modelyard.runtimes.torch_int8 import is_quantized, load_weights

EVAL_WINDOWS = 4096  # evaluation reads at most this many context windows of a split
EXPORT_WINDOWS = 64  # the export's parity check compares next-token probabilities on this many windows


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
    export_kind = "next_token"  # the parity check compares next-token probabilities and perplexity
    takes_feedback = False  # retrain tunes pretrained chat models (LoRA) on rated answers, never this one

    def __init__(
        self, model: GPT | None, tokenizer: Tokenizer, generation: GenerationOptions, config: GPTConfig | None = None
    ) -> None:
        self.module = model
        self.config: GPTConfig = config or model.config
        self.backbone = "gpt-scratch"
        self.precision = "fp32"
        self.tokenizer = tokenizer
        self.codec = lm_tokenizer.Codec(tokenizer)
        self.generator = TextGenerator(self.decoder(), self.codec, render_plain, generation)
        self._streams: list[tuple[list, torch.Tensor]] = []  # encoded splits, keyed by identity

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
        weights = directory / "model.safetensors"
        if is_quantized(weights):
            model = load_weights(model, weights)  # an int8 PyTorch export
        else:
            load_model(model, weights)
        return cls(model.eval(), Tokenizer.from_file(str(directory / "tokenizer.json")), options.generation)

    def decoder(self) -> Decoder:
        return GPTDecoder(self.module, {self.codec.eot_id})

    def train_defaults(self) -> dict[str, Any]:
        """nanoGPT's small-model recipe (cosine decay to a tenth after a short warm-up, weight decay 0.1, beta2 0.99)
        with a 3x higher peak LR: on Tiny Shakespeare's baby GPT, 3e-3 reaches validation loss 1.775 in 2000 steps
        where nanoGPT's 1e-3 reaches 1.91 (2e-3: 1.81, 5e-3: 1.78)."""
        return {
            "learning_rate": 3e-3,
            "batch_size": 12,
            "scheduler": "cosine",
            "min_lr_ratio": 0.1,
            "weight_decay": 0.1,
            "adam_betas": (0.9, 0.99),
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
        if training and len(tokens) < self.config.block_size + 1:
            raise DataError(
                f"the training text has {len(tokens)} tokens, fewer than one context window "
                f"({self.config.block_size + 1})",
                "add text or lower model.context",
            )
        return WindowDataset(tokens, min(self.config.block_size, len(tokens) - 1), training)

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

    def evaluate(self, data: list[str | dict]) -> dict[str, Any]:
        units, outputs = self.eval_outputs(data)
        return self.eval_score(data, outputs[np.argsort(units)])

    def eval_score(self, data: list[str | dict], outputs: np.ndarray) -> dict[str, Any]:
        """Mean next-token loss over non-overlapping windows of the split, and its perplexity; `outputs` holds
        each window's summed loss and token count."""
        return perplexity_metrics(outputs)

    def unit_losses(self, data: list[str | dict]) -> tuple[np.ndarray, np.ndarray]:
        """Summed next-token loss and token count of each non-overlapping window, in text order (the report's
        bootstrap resamples these)."""
        _, outputs = self.eval_outputs(data)
        return outputs[:, 0], outputs[:, 1]

    def eval_outputs(self, data: list[str | dict], shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Windows and their (summed loss, token count), from every shard[1]-th batch of 64 windows
        (ShardedEvaluation)."""
        tokens = self._stream(data)
        units, rows = [np.zeros(0, dtype=np.int64)], [np.zeros((0, 2))]
        if len(tokens) < 2:
            return units[0], rows[0]
        dataset = WindowDataset(tokens, min(self.config.block_size, len(tokens) - 1), training=False)
        windows = range(min(len(dataset), EVAL_WINDOWS))
        for start in range(0, len(windows), 64)[shard[0] :: shard[1]]:
            chunk = windows[start : start + 64]
            batch = self.collate([dataset[i] for i in chunk])
            logits = self.window_logits(batch["input_ids"])  # (B, T, vocab)
            targets = batch["targets"].to(logits.device)  # (B, T)
            losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
            counts = np.full(len(targets), targets.shape[1], dtype=np.float64)
            rows.append(np.stack([losses.sum(1).double().cpu().numpy(), counts], 1))
            units.append(np.asarray(chunk))
        return np.concatenate(units), np.concatenate(rows)

    @torch.inference_mode()
    def window_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """fp32 logits (B, T, vocab) of full windows, computed in eval mode on the model's device."""
        was_training = self.module.training
        self.module.eval()
        logits = self.module(input_ids.to(self.module.wte.weight.device)).float()
        self.module.train(was_training)
        return logits

    def generate(self, prompt: Prompt, **options: Any) -> str:
        return "".join(self.generate_stream(prompt, **options))

    def generate_stream(self, prompt: Prompt, **options: Any) -> Iterator[str]:
        if self.module is not None:
            self.module.eval()
        return self.generator.stream(prompt, **options)

    def predict(self, inputs: list[Prompt], top_k: int = 1) -> list[dict[str, Any]]:
        """The generated continuation of each prompt (`top_k` does not apply to generation)."""
        if self.module is not None:
            self.module.eval()
        return self.generator.complete(inputs)

    def save(self, directory: Path) -> dict[str, Any]:
        with atomic_path(directory / "model.safetensors") as tmp:
            save_model(self.module, str(tmp))
        atomic_write_text(directory / "tokenizer.json", self.tokenizer.to_str())
        spec = asdict(self.module.config)
        atomic_write_text(directory / "gpt.json", json.dumps(spec, indent=2) + "\n")
        return {"architecture": spec, "parameters": self.module.num_parameters()}

    def onnx_graph(self) -> OnnxGraph:
        """Logits of left-padded token windows, dynamic in batch and sequence length; dynamic int8 (MatMul)."""
        ids, mask = left_pad([[1, 2, 3], [4, 5]], 0)
        axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "logits")}
        return OnnxGraph(
            _PaddedLM(self.module), (ids, mask.long()), ["input_ids", "attention_mask"], ["logits"], axes, "dynamic"
        )

    def export_examples(self, data: list[str | dict]) -> tuple[list[list[int]], np.ndarray]:
        """Up to EXPORT_WINDOWS non-overlapping context windows of the split, and each position's next token."""
        tokens = self._stream(data)
        if len(tokens) < 2:
            return [], np.zeros((0, 0), dtype=np.int64)
        dataset = WindowDataset(tokens, min(self.config.block_size, len(tokens) - 1), training=False)
        windows = [dataset[i] for i in range(min(len(dataset), EXPORT_WINDOWS))]
        return [w["input_ids"].tolist() for w in windows], np.stack([w["targets"].numpy() for w in windows])

    def export_outputs(self, inputs: list[list[int]]) -> np.ndarray:
        """Next-token probabilities (N, T, vocab) of equally long windows."""
        ids = torch.tensor(inputs, dtype=torch.long)
        chunks = [self.window_logits(ids[i : i + 16]).softmax(-1).cpu() for i in range(0, len(ids), 16)]
        return torch.cat(chunks).numpy()


class _PaddedLM(nn.Module):
    """The exported graph: the GPT over left-padded rows, exactly as decoding's prefill computes them (positions
    count real tokens, padding is masked out), so one graph serves evaluation and batched generation."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.bool()  # (B, T) True for real tokens
        cache = KVCache.empty(self.gpt.config.n_layer)  # empty: only so that the padding mask is applied
        return self.gpt(input_ids, pos=positions(mask), cache=cache, mask=mask)  # (B, T, vocab)


class OnnxGPTDecoder:
    """Decoding through the exported forward pass. There is no KV cache in the graph: every step recomputes the
    last `block_size` tokens of each row (a sliding window). For the small GPT this costs little."""

    def __init__(self, session: Any, block: int, eos_ids: set[int], pad_id: int = 0) -> None:
        self.session, self.block, self.eos_ids, self.pad_id = session, block, eos_ids, pad_id
        self.max_context = None

    def start(self, prompts: Sequence[Sequence[int]]) -> OnnxGPTSession:
        return OnnxGPTSession(self, [list(p) or [next(iter(self.eos_ids))] for p in prompts])


class OnnxGPTSession:
    def __init__(self, decoder: OnnxGPTDecoder, prompts: list[list[int]]) -> None:
        self.decoder = decoder
        self.history = prompts
        self._logits = self._last_logits()

    def _last_logits(self) -> torch.Tensor:
        ids, mask = left_pad([h[-self.decoder.block :] for h in self.history], self.decoder.pad_id)
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.long().numpy()}
        return torch.from_numpy(self.decoder.session.run(["logits"], feeds)[0][:, -1, :])  # (B, vocab)

    def logits(self) -> torch.Tensor:
        return self._logits

    def advance(self, tokens: torch.Tensor) -> None:
        for h, t in zip(self.history, tokens.tolist(), strict=True):
            h.append(t)
        self._logits = self._last_logits()

    def keep(self, rows: torch.Tensor) -> None:
        self.history = [self.history[i] for i in rows.tolist()]
        self._logits = self._logits.index_select(0, rows)


class OnnxGPTLearner(GPTLearner):
    """The same tokenizer, generation options and evaluation, with the forward pass in ONNX Runtime (no KV cache:
    generation recomputes the window each step, see `OnnxGPTDecoder`)."""

    def __init__(
        self, session_path: Path, config: GPTConfig, tokenizer: Tokenizer, generation: GenerationOptions
    ) -> None:
        self.session_path = session_path
        self.session = onnx_session(session_path)
        super().__init__(None, tokenizer, generation, config)

    @classmethod
    def load(cls, directory: Path, options: Any) -> OnnxGPTLearner:
        spec = json.loads((directory / "gpt.json").read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        return cls(directory / ONNX_FILE, GPTConfig(**spec), tokenizer, options.generation)

    def decoder(self) -> Decoder:
        return OnnxGPTDecoder(self.session, self.config.block_size, {self.codec.eot_id})

    def window_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": np.ones(input_ids.shape, dtype=np.int64)}
        return torch.from_numpy(self.session.run(["logits"], feeds)[0]).float()

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        atomic_write_text(directory / "tokenizer.json", self.tokenizer.to_str())
        spec = asdict(self.config)
        atomic_write_text(directory / "gpt.json", json.dumps(spec, indent=2) + "\n")
        return {"architecture": spec}
