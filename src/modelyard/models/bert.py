"""A BERT encoder in plain PyTorch that reads Hugging Face `BertModel` weights, for loading bundles fast.

Fine-tuning builds the encoder with transformers; a saved bundle is rebuilt from `encoder/config.json` and the
safetensors with this module instead, whose parameter names match `BertModel`'s one for one. Importing
transformers' modeling code takes seconds on a small CPU, more than the whole model load, and `modelyard serve`
must be ready in a few. Only configs this module computes exactly are taken (`supports`); others load with
transformers. A test holds its outputs equal to `BertModel`'s.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modelyard.fsutil import atomic_write_json


@dataclass
class BertSettings:
    """The `config.json` fields the forward pass reads; the file's other fields are kept to write it back."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int | None = 0
    raw: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertSettings:
        names = {f.name for f in fields(cls)} - {"raw"}
        return cls(**{k: v for k, v in raw.items() if k in names}, raw=raw)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write `config.json` as transformers would read it back (the interface of `PretrainedConfig`)."""
        values = {k: v for k, v in asdict(self).items() if k != "raw"}
        atomic_write_json(Path(directory) / "config.json", {**(self.raw or {}), **values})


def supports(raw: dict[str, Any]) -> bool:
    """Whether a Hugging Face config describes the plain BERT encoder this module computes exactly."""
    return (
        raw.get("model_type") == "bert"
        and raw.get("hidden_act", "gelu") == "gelu"
        and raw.get("position_embedding_type", "absolute") == "absolute"
        and not raw.get("is_decoder", False)
        and not raw.get("add_cross_attention", False)
    )


def read_settings(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "config.json").read_text(encoding="utf-8"))


class Embeddings(nn.Module):
    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, packing: Packing) -> torch.Tensor:
        """(B, T) ids -> (N, C) states of the real tokens only (token type 0 throughout, as for one segment).
        The word lookup keeps the (B, T, C) batch layout: explanations hook that layer's output per example."""
        b, t = input_ids.shape
        positions = torch.arange(t, device=input_ids.device).expand(b, t)  # (B, T)
        words = packing.pack(self.word_embeddings(input_ids))  # (N, C)
        x = words + self.token_type_embeddings.weight[0]
        x = x + self.position_embeddings(packing.pack(positions[..., None]).squeeze(1))
        return self.dropout(self.LayerNorm(x))


# Attention time of one (b, L) padded block on this 2-core CPU: TOKEN_MS and PAIR_MS fitted on PyTorch's CPU flash
# attention in bf16; CALL_MS, each bucket's fixed cost with its gathers, chosen on served MiniLM batches (0.03 to
# 0.4 tried: 0.2 and up split a random batch of 32 BANKING77 texts into ~2 buckets and ran it 3% faster than 0.03).
CALL_MS, TOKEN_MS, PAIR_MS = 0.2, 6.4e-4, 3.7e-6


def attention_buckets(lengths: list[int]) -> list[list[int]]:
    """Split a batch into groups of similar length (sequence indices, shortest first) that attend separately,
    each padded to its own longest: the split with the least modelled attention time (dynamic programming over
    the lengths in order). A batch of served requests mixes 5-token and 60-token texts; padded to 60 together,
    attention was a third of a MiniLM forward pass."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    ordered = [lengths[i] for i in order]
    best = [0.0] + [math.inf] * len(ordered)  # best[i]: least time for the i shortest sequences
    start = [0] * (len(ordered) + 1)
    for end in range(1, len(ordered) + 1):
        longest = ordered[end - 1]
        for first in range(end):
            size = end - first
            time = best[first] + CALL_MS + size * longest * (TOKEN_MS + PAIR_MS * longest)
            if time < best[end]:
                best[end], start[end] = time, first
    buckets, end = [], len(ordered)
    while end:
        buckets.append(order[start[end] : end])
        end = start[end]
    return buckets[::-1]


@dataclass
class Bucket:
    """Sequences of similar length in their own padded (b, L) layout, gathered from the packed tokens."""

    size: int
    length: int
    index: torch.Tensor  # (b*L,) the packed token at each position; token 0 where it is padding (masked, unused)
    real: torch.Tensor  # (n,) the positions of real tokens in that flat layout
    keep: torch.Tensor | None  # (b, 1, 1, L) True where a key is a real token; None: no padding

    @classmethod
    def of(cls, sequences: list[int], lengths: torch.Tensor, offsets: torch.Tensor) -> Bucket:
        chosen = torch.tensor(sequences, device=lengths.device)
        lens = lengths[chosen]  # (b,)
        length = max(1, int(lens.max()))
        steps = torch.arange(length, device=lengths.device)
        valid = steps[None, :] < lens[:, None]  # (b, L)
        index = torch.where(valid, offsets[chosen][:, None] + steps, 0).flatten()
        keep = None if bool(valid.all()) else valid[:, None, None, :]
        return cls(len(sequences), length, index, valid.flatten().nonzero().squeeze(1), keep)


@dataclass
class Packing:
    """Where a padded (B, T) batch's real tokens sit. The linear layers, most of the compute, run on those N
    tokens alone; only attention sees a padded layout: the batch's own (B, T), or, when its lengths differ
    enough, one layout per length bucket. Without padding both layouts are views."""

    batch: int
    length: int
    rows: torch.Tensor | None  # (N,) flat indices of the real tokens in B*T; None: every position is kept
    keep: torch.Tensor | None  # (B, 1, 1, T) True where a key is a real token; None: no mask needed
    buckets: list[Bucket] | None = None  # None: attention runs on the (B, T) layout
    order: torch.Tensor | None = None  # (N,) where each packed token sits in the buckets' outputs, end to end

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> Packing:
        b, t = attention_mask.shape
        keep = attention_mask.bool()
        if torch.jit.is_tracing():  # ONNX export: one static graph, padded, masked
            return cls(b, t, None, keep[:, None, None, :])
        if bool(keep.all()):
            return cls(b, t, None, None)
        packing = cls(b, t, keep.flatten().nonzero().squeeze(1), keep[:, None, None, :])
        lengths = keep.sum(1)  # (B,)
        groups = attention_buckets(lengths.tolist())
        if len(groups) > 1:
            offsets = lengths.cumsum(0) - lengths  # (B,) where each sequence starts among the packed tokens
            n = len(packing.rows)
            packing.buckets = [Bucket.of(group, lengths, offsets) for group in groups]
            tokens = torch.cat([bucket.index[bucket.real] for bucket in packing.buckets])  # a permutation of N
            packing.order = torch.empty_like(tokens).scatter_(0, tokens, torch.arange(n, device=tokens.device))
        return packing

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, C)."""
        flat = x.reshape(self.batch * self.length, -1)
        return flat if self.rows is None else flat.index_select(0, self.rows)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) -> (B, T, C), zeros at padded positions."""
        if self.rows is not None:
            x = x.new_zeros(self.batch * self.length, x.shape[-1]).index_copy(0, self.rows, x)
        return x.view(self.batch, self.length, x.shape[-1])


class SelfAttention(nn.Module):
    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        if packing.buckets is not None:
            return self.bucketed(x, packing)
        b, t, c = packing.batch, packing.length, x.shape[-1]  # x: (N, C), the real tokens
        q, k, v = (packing.pad(proj(x)) for proj in (self.query, self.key, self.value))  # (B, T, C) each
        return packing.pack(self.attend(q, k, v, packing.keep).view(b, t, c))  # (N, C)

    def bucketed(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        """Attention bucket by bucket, the outputs put back in packed order."""
        c = x.shape[-1]
        qkv = torch.cat([proj(x) for proj in (self.query, self.key, self.value)], -1)  # (N, 3C)
        outputs = []
        for bucket in packing.buckets:
            q, k, v = qkv.index_select(0, bucket.index).view(bucket.size, bucket.length, 3 * c).chunk(3, -1)
            y = self.attend(q, k, v, bucket.keep).view(bucket.size * bucket.length, c)
            outputs.append(y.index_select(0, bucket.real))  # (n, C)
        return torch.cat(outputs).index_select(0, packing.order)  # (N, C)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """(b, L, C) queries, keys and values -> (b, L, C), heads split and merged."""
        b, length, c = q.shape
        q, k, v = (z.reshape(b, length, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        dropout = self.dropout_p if self.training else 0.0
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep, dropout_p=dropout, scale=1 / math.sqrt(c // self.heads)
        )  # (b, H, L, C/H)
        return y.transpose(1, 2).reshape(b, length, c)


class DenseNorm(nn.Module):
    """Projection, dropout, then LayerNorm of the residual sum (BERT is post-norm)."""

    def __init__(self, cfg: BertSettings, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = DenseNorm(cfg, cfg.hidden_size)

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        return self.output(self.self(x, packing), x)


class Intermediate(nn.Module):
    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, BERT's "gelu"


class Layer(nn.Module):
    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = DenseNorm(cfg, cfg.intermediate_size)

    def forward(self, x: torch.Tensor, packing: Packing) -> torch.Tensor:
        x = self.attention(x, packing)  # (N, C)
        return self.output(self.intermediate(x), x)  # (N, C)


class Stack(nn.Module):
    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))


class Pooler(nn.Module):
    """Kept so the weights round-trip with `BertModel`; the classifier mean-pools instead of using it."""

    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)


class BertEncoder(nn.Module):
    """Token ids and attention mask in, last hidden states out, like `BertModel(...).last_hidden_state` at every
    position the mask keeps (padded positions come out as zeros)."""

    def __init__(self, cfg: BertSettings) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.encoder = Stack(cfg)
        self.pooler = Pooler(cfg)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        packing = Packing.of(attention_mask)
        x = self.embeddings(input_ids, packing)  # (N, C): padding costs no lookups or matrix products
        for layer in self.encoder.layer:
            x = layer(x, packing)
        return packing.pad(x)  # (B, T, C), zeros where the mask is 0
