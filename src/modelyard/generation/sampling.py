"""Choosing the next token from logits: repetition penalty, temperature, top-k, top-p (the order HF uses)."""

from __future__ import annotations

import torch

from modelyard.generation.options import GenerationOptions


def penalise_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already in the context: positive logits shrink, negative ones grow. A tiny
    penalty (which favours repeats) stays finite: an infinite logit would make the probabilities NaN."""
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    picked = logits.gather(0, seen)
    logits = logits.clone()
    limit = torch.finfo(logits.dtype).max
    logits.scatter_(0, seen, torch.where(picked > 0, picked / penalty, picked * penalty).clamp(-limit, limit))
    return logits


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k >= logits.numel():
        return logits
    threshold = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < threshold, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the most likely tokens whose probabilities sum to at least p (always at least one)."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    drop = cumulative - sorted_logits.softmax(-1) >= p  # mass before this token already reaches p
    drop[0] = False
    return logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))


def next_token(
    logits: torch.Tensor, seen: torch.Tensor, options: GenerationOptions, generator: torch.Generator | None
) -> int:
    """One token id from `logits` (V,) given the ids `seen` so far (prompt and generated)."""
    logits = penalise_repeats(logits.float().cpu(), seen, options.repetition_penalty)
    if options.greedy:
        return int(logits.argmax())
    # The best token at 0, and T no lower than float32 can divide by: no inf/inf or 0/0 however low T is.
    logits = (logits - logits.max()) / max(options.temperature, torch.finfo(logits.dtype).tiny)
    if options.top_k is not None:
        logits = filter_top_k(logits, options.top_k)
    if options.top_p is not None:
        logits = filter_top_p(logits, options.top_p)
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))
