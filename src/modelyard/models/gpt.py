"""A small decoder-only Transformer (GPT-2 style), in the spirit of nanoGPT's model.py.

Pre-norm blocks of causal self-attention and an MLP, learned position embeddings, the output projection tied
to the token embedding. `forward` also serves decoding: pass a `KVCache` and the model only computes the new
tokens, attending to the cached keys and values; `pos` and a padding `mask` let batch rows be left-padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 256  # longest context (learned positions)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False


@dataclass
class KVCache:
    """Keys and values of every layer for the tokens seen so far, and which of them are padding."""

    keys: list[torch.Tensor | None]  # per layer (B, nh, S, hs)
    values: list[torch.Tensor | None]
    mask: torch.Tensor | None = None  # (B, S) bool, True for real tokens
    length: int = field(default=0)

    @classmethod
    def empty(cls, n_layer: int) -> KVCache:
        return cls([None] * n_layer, [None] * n_layer)

    def select(self, rows: torch.Tensor) -> KVCache:
        """Keep only `rows` of the batch (finished requests drop out)."""
        pick = lambda t: None if t is None else t.index_select(0, rows)  # noqa: E731
        return KVCache([pick(k) for k in self.keys], [pick(v) for v in self.values], pick(self.mask), self.length)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is not None:
            if cache.keys[layer] is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)  # (B, nh, S, hs)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer] = k, v
        dropout = self.dropout if self.training else 0.0
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None, layer: int, attn_mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, attn_mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # token embeddings
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)  # position embeddings
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (https://paperswithcode.com/method/weight-tying)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        pos: torch.Tensor | None = None,
        cache: KVCache | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for tokens `idx` (B, T); with a cache, `idx` holds only the new tokens.

        `mask` (B, T) marks real tokens (False for left padding); it is remembered in the cache.
        """
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if pos is None:
            pos = torch.arange(past, past + T, device=idx.device).expand(B, T)  # (B, T)
        if int(pos.max()) >= self.config.block_size:
            raise ValueError(f"position {int(pos.max())} is beyond the context of {self.config.block_size} tokens")
        attn_mask = None
        if cache is not None:
            if mask is not None or cache.mask is not None:
                old = cache.mask if cache.mask is not None else idx.new_ones(B, past, dtype=torch.bool)
                new = mask if mask is not None else idx.new_ones(B, T, dtype=torch.bool)
                cache.mask = torch.cat([old, new.bool()], dim=1)  # (B, S)
            if past > 0 or cache.mask is not None:
                attn_mask = self._decode_mask(cache, past, B, T, idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, attn_mask)
        if cache is not None:
            cache.length = past + T
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)

    @staticmethod
    def _decode_mask(cache: KVCache, past: int, B: int, T: int, device: torch.device) -> torch.Tensor:
        """(B, 1, T, S) bool: causal over cache + new tokens, padding hidden, each token sees itself."""
        S = past + T
        q_at = torch.arange(past, S, device=device)[:, None]  # (T, 1) absolute query positions
        k_at = torch.arange(S, device=device)[None, :]  # (1, S)
        causal = k_at <= q_at  # (T, S)
        if cache.mask is None:
            return causal.expand(B, 1, T, S)
        return (causal & cache.mask[:, None, None, :]) | (k_at == q_at)  # (B, 1, T, S)
