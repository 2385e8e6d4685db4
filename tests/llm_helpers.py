"""A tiny random Llama for the LoRA tests: the real architecture and peft wiring, in milliseconds."""

from __future__ import annotations

from typing import Any


def tiny_llama_config(vocab_size: int, **extra: Any):
    """Two layers, 32 wide, `extra` overrides any size or adds token ids."""
    from transformers import LlamaConfig

    sizes = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    }
    return LlamaConfig(vocab_size=vocab_size, **(sizes | extra))
