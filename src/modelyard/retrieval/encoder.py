"""Sentence embeddings from a bundled encoder: mean of the last token states, L2-normalised, as MiniLM and E5
were trained; cosine similarity is then a dot product.

E5 models were trained with "query: " in front of questions and "passage: " in front of documents and match
worse without them; MiniLM takes no prefix. bf16 (where the CPU computes it natively) keeps embeddings within
~0.999 cosine of float32 at about twice the speed (tests/integration/test_retrieval_encoder.py measures it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from modelyard.errors import ModelNotFoundError
from modelyard.models import bert, catalog
from modelyard.precision import autocast, resolve

Kind = Literal["query", "passage"]
DEFAULT_ENCODER = "minilm-l6"
MAX_TOKENS = 256  # sentence-transformers' limit for all-MiniLM-L6-v2; chunks are far shorter
BATCH_TOKENS = 8192  # tokens per forward pass: long chunks go in smaller batches


@dataclass
class TextEmbedder:
    name: str
    tokenizer: object  # tokenizers.Tokenizer
    module: nn.Module
    prefixes: dict[str, str]
    precision: str
    dim: int

    @classmethod
    def load(cls, name: str, precision: str = "auto") -> TextEmbedder:
        """A bundled encoder by name (minilm-l6, multilingual-e5-small) or a local Hugging Face BERT folder."""
        from tokenizers import Tokenizer

        folder = encoder_folder(name)
        raw = bert.read_settings(folder)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(min(MAX_TOKENS, int(raw.get("max_position_embeddings", 512))))
        module = _encoder(folder, raw)
        e5 = "e5" in name.lower() or "e5" in folder.name.lower()
        prefixes = {"query": "query: ", "passage": "passage: "} if e5 else {"query": "", "passage": ""}
        return cls(name, tokenizer, module, prefixes, resolve(precision), int(raw["hidden_size"]))

    def token_counts(self, texts: list[str], kind: Kind = "query") -> list[int]:
        return [len(e.ids) for e in self._encode(texts, kind)]

    def _encode(self, texts: list[str], kind: Kind) -> list:
        prefix = self.prefixes[kind]
        return self.tokenizer.encode_batch([prefix + t for t in texts])

    @torch.inference_mode()
    def embed(self, texts: list[str], kind: Kind, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """(N, dim) float32 unit vectors; `progress(n)` is told after each batch of n texts."""
        encodings = self._encode(texts, kind)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")[::-1]  # longest first: few paddings
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            longest = len(encodings[order[start]].ids)
            rows = order[start : start + max(1, BATCH_TOKENS // max(longest, 1))]
            out[rows] = self._batch([encodings[i].ids for i in rows])
            start += len(rows)
            if progress is not None:
                progress(len(rows))
        return out

    def _batch(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = torch.zeros(len(ids), width, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
        with autocast(self.precision, torch.device("cpu")):
            states = self.module(input_ids=input_ids, attention_mask=mask)
        states = getattr(states, "last_hidden_state", states).float()  # (B, T, C)
        weights = mask.unsqueeze(-1).float()  # (B, T, 1)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, C)
        return torch.nn.functional.normalize(pooled, dim=1).numpy()


def encoder_folder(name: str) -> Path:
    """Where an encoder's files are: a clear error for an unknown name before any work starts."""
    if name in catalog.names("text-encoder"):
        return catalog.locate(name)
    if catalog.is_local_hf_dir(name) and (Path(name) / "tokenizer.json").is_file():
        return Path(name).expanduser()
    raise ModelNotFoundError(
        f"unknown encoder '{name}'",
        "use minilm-l6 (English), multilingual-e5-small (Chinese and ~100 other languages), or a local Hugging "
        "Face folder with config.json, tokenizer.json and model.safetensors",
    )


def _encoder(folder: Path, raw: dict) -> nn.Module:
    """BERT configs in plain PyTorch (fast to import); any other architecture through transformers."""
    if bert.supports(raw) and (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        module = bert.BertEncoder(bert.BertSettings.from_dict(raw))
        state = {k.removeprefix("bert."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
        missing, _ = module.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith("pooler.")]:
            raise ModelNotFoundError(f"{folder}: model.safetensors lacks {missing[0]} (and {len(missing) - 1} more)")
    else:
        from transformers import AutoModel

        module = AutoModel.from_pretrained(str(folder))
    return module.eval()
