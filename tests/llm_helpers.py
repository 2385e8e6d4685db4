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


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def save_tiny_chat_llama(folder, corpus: str) -> None:
    """A tiny random Llama with a character tokenizer learnt from `corpus` and a chat template, as a local Hugging
    Face folder (a `backbone` for text_generation)."""
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from modelyard.models import lm_tokenizer

    torch.manual_seed(0)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=lm_tokenizer.train([corpus + "<|system|><|user|><|assistant|>"], "char"),
        eos_token=lm_tokenizer.EOT,
        pad_token=lm_tokenizer.EOT,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = tiny_llama_config(len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
