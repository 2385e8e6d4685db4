"""A whole pretrained Whisper (encoder and decoder) as a trainable PyTorch model: transformers'
`WhisperForConditionalGeneration`, its weights read from the bundled CTranslate2 files, behind Whisper's log-mel
front end, so that it can be fine-tuned on a user's recordings.

The encoder runs on a fixed input of `positions` x 20 ms (the longest training recording, not Whisper's 30 s), which
makes a training step 3-6x cheaper on short utterances; shorter inputs are padded with silence.
"""

from __future__ import annotations

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import GenerationMixin, WhisperConfig, WhisperForConditionalGeneration

from modelyard.errors import BundleError, ConfigError
from modelyard.models.ct2_weights import read_variables
from modelyard.models.whisper_ct2 import WHISPER, weight_files
from modelyard.models.whisper_encoder import (
    CLIP_QUANTUM,
    WhisperLogMel,
    attention_and_ffn,
    encoder_shape,
    encoder_state,
    float_tensors,
    linear,
    norm,
)

SPECIALS = ("<|startoftranscript|>", "<|transcribe|>", "<|notimestamps|>", "<|endoftext|>")


def prompt_tokens(tokenizer: Tokenizer, name: str, language: str | None) -> list[int]:
    """What every transcript starts with: start, the language (multilingual models), transcribe, no timestamps.
    A language the model does not know is a ConfigError."""
    names = ["<|startoftranscript|>"]
    if WHISPER[name].multilingual:
        names.append(f"<|{language or 'en'}|>")
    names += ["<|transcribe|>", "<|notimestamps|>"]
    ids = [tokenizer.token_to_id(n) for n in names]
    if None in ids:
        raise ConfigError(f"model.language {language!r} is not a language {name} knows", "use a code such as en or zh")
    return ids


def model_config(
    shape: dict[str, int], decoder: dict[str, int], positions: int, tokens: dict[str, int]
) -> WhisperConfig:
    end = tokens["<|endoftext|>"]
    config = WhisperConfig(
        **shape,
        **decoder,
        max_source_positions=positions,
        decoder_start_token_id=tokens["<|startoftranscript|>"],
        pad_token_id=end,
        eos_token_id=end,
        bos_token_id=end,
        dropout=0.0,
    )
    config._attn_implementation = "sdpa"
    return config


def decoder_shape(variables: dict[str, np.ndarray]) -> dict[str, int]:
    vocab, _ = variables["decoder/embeddings/weight"].shape
    return {
        "vocab_size": int(vocab),
        "decoder_layers": sum(1 for k in variables if k.startswith("decoder/") and k.endswith("/ffn/linear_0/weight")),
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "decoder_ffn_dim": int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_target_positions": int(variables["decoder/position_encodings/encodings"].shape[0]),
    }


def decoder_state(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2's decoder tensors under transformers' names (cross-attention's fused k/v split; no key bias).
    The output projection is tied to the token embeddings."""
    t = float_tensors(variables)
    state = {
        "embed_tokens.weight": t["decoder/embeddings/weight"],
        "embed_positions.weight": t["decoder/position_encodings/encodings"],
    } | norm(t, "decoder/layer_norm", "layer_norm")
    for layer in range(decoder_shape(variables)["decoder_layers"]):
        src, dst = f"decoder/layer_{layer}", f"layers.{layer}"
        key, value = t[f"{src}/attention/linear_1/weight"].chunk(2)
        state |= attention_and_ffn(t, src, dst) | {
            f"{dst}.encoder_attn.k_proj.weight": key,
            f"{dst}.encoder_attn.v_proj.weight": value,
            f"{dst}.encoder_attn.v_proj.bias": t[f"{src}/attention/linear_1/bias"].chunk(2)[1],
        }
        state |= linear(t, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        state |= linear(t, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        state |= norm(t, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    return state


class WhisperRecognizer(nn.Module):
    """(B, positions x 320) 16 kHz waveform + decoder tokens -> next-token logits; `generate` transcribes."""

    def __init__(self, config: WhisperConfig, max_hz: float = 8000.0) -> None:
        super().__init__()
        self.samples = config.max_source_positions * CLIP_QUANTUM
        self.frontend = WhisperLogMel(config.num_mel_bins, max_hz)
        self.whisper = WhisperForConditionalGeneration(config)

    def forward(self, wave: torch.Tensor, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        return self.whisper(input_features=self.frontend(wave), decoder_input_ids=decoder_input_ids).logits

    def generate(self, wave: torch.Tensor, prompt: list[int], max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding after `prompt` (plain encoder-decoder generation: Whisper's long-form, language-detection
        and timestamp logic does not apply to these fixed-length inputs)."""
        prompts = torch.tensor([prompt] * wave.shape[0], device=wave.device)
        features = self.frontend(wave)
        return GenerationMixin.generate(
            self.whisper,
            input_features=features,
            attention_mask=torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=wave.device),
            decoder_input_ids=prompts,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
        )[:, len(prompt) :]

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The weights without the output projection, which is the token embedding (tied)."""
        return {k: v for k, v in self.state_dict().items() if k != "whisper.proj_out.weight"}

    def load_saved(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"whisper.proj_out.weight"}:
            raise BundleError(
                f"the Whisper weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}",
                "train the bundle again with this version of modelyard",
            )
        self.whisper.tie_weights()


def pretrained_recognizer(
    name: str, seconds: float, max_hz: float = 8000.0
) -> tuple[WhisperRecognizer, dict, Tokenizer]:
    """A bundled Whisper model as a `WhisperRecognizer` for inputs of up to `seconds` (at most 30), its config
    (for the bundle) and its tokenizer, every file checked by sha256."""
    files = weight_files(name)
    variables = read_variables(files["model.bin"])
    tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
    positions = min(1500, max(1, int(np.ceil(seconds * 16000 / CLIP_QUANTUM))))
    encoder = {k: v for k, v in variables.items() if k.startswith("encoder/")}
    tokens = {n: tokenizer.token_to_id(n) for n in SPECIALS}
    config = model_config(encoder_shape(encoder), decoder_shape(variables), positions, tokens)
    module = WhisperRecognizer(config, max_hz)
    state = {f"whisper.model.encoder.{k}": v for k, v in encoder_state(encoder, positions).items()}
    state |= {f"whisper.model.decoder.{k}": v for k, v in decoder_state(variables).items()}
    module.load_saved(state)
    return module, config.to_dict(), tokenizer
