"""Language-model metrics: mean next-token loss and perplexity from per-unit (summed loss, token count) rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def perplexity_metrics(outputs: np.ndarray) -> dict[str, Any]:
    """`outputs` (N, 2): each unit's summed loss and token count -> loss per token, perplexity, tokens ({} if none)."""
    if not len(outputs) or not outputs[:, 1].sum():
        return {}
    loss = float(outputs[:, 0].sum() / outputs[:, 1].sum())
    return {
        "loss": round(loss, 5),
        "perplexity": round(math.exp(min(loss, 50.0)), 4),
        "tokens": int(outputs[:, 1].sum()),
    }
