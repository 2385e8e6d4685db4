"""A pretrained Whisper encoder as a PyTorch audio classifier: Whisper's log-mel front end and transformers'
`WhisperEncoder`, its weights read from the CTranslate2 files of the bundled Whisper packages, mean-pooled over
time, under a linear head.

Whisper pads every input to 30 s; for short clips the encoder runs on the clip's own frames (its first positional
embeddings), 30-60x less work, and a clip of 1 s costs about as much as a small CNN. The front end, the encoder
and the head are one module: bundle weights, predictions, the server and the ONNX graph compute the same thing.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import WhisperConfig
from transformers.audio_utils import mel_filter_bank
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from modelyard.models.ct2_weights import read_variables
from modelyard.models.whisper_ct2 import weight_files

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
FRAMES_PER_POSITION = 2  # conv2 has stride 2
MAX_POSITIONS = 1500  # Whisper's 30 s window
CLIP_QUANTUM = HOP * FRAMES_PER_POSITION  # clip lengths are a whole number of encoder positions (20 ms)


class WhisperLogMel(nn.Module):
    """Whisper's features: 25 ms Hann windows every 10 ms (reflect-padded, centred), 80 Slaney mel bands to
    8 kHz, log10 floored at 8 decades under each clip's peak, scaled by (x + 4) / 4. (B, N) -> (B, 80, N // 160).

    `max_hz` below 8 kHz drops the spectrum above it (as if low-passed): a model trained on 8 kHz telephone audio
    then sees 16 kHz recordings as it saw its training data.
    """

    def __init__(self, n_mels: int = 80, max_hz: float = 8000.0) -> None:
        super().__init__()
        filters = mel_filter_bank(N_FFT // 2 + 1, n_mels, 0.0, 8000.0, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        kept = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE) <= max_hz
        filters = filters * kept[:, None]
        self.register_buffer("fbank", torch.tensor(filters, dtype=torch.float32), persistent=False)  # (201, n_mels)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        padded = F.pad(wave.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect").squeeze(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # return_complex=False is what the ONNX STFT op exports
            spec = torch.stft(padded, N_FFT, HOP, window=self.window, center=False, return_complex=False)
        power = spec[:, :, :-1].pow(2).sum(-1)  # (B, 201, T), the last frame dropped as Whisper does
        mel = torch.matmul(power.transpose(1, 2), self.fbank).clamp(min=1e-10).log10()  # (B, T, n_mels)
        mel = torch.maximum(mel, mel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return ((mel + 4.0) / 4.0).transpose(1, 2)  # (B, n_mels, T)


def encoder_shape(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """The encoder's sizes, read off its tensors."""
    width, mels, _ = variables["encoder/conv1/weight"].shape
    layers = sum(1 for k in variables if k.startswith("encoder/") and k.endswith("/ffn/linear_0/weight"))
    return {
        "d_model": int(width),
        "num_mel_bins": int(mels),
        "encoder_layers": int(layers),
        "encoder_attention_heads": int(variables["encoder/num_heads"]),
        "encoder_ffn_dim": int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
    }


def encoder_config(shape: dict[str, int], positions: int) -> WhisperConfig:
    config = WhisperConfig(**shape, max_source_positions=positions, encoder_layerdrop=0.0, dropout=0.0)
    config._attn_implementation = "sdpa"
    return config


Tensors = dict[str, torch.Tensor]


def float_tensors(variables: dict[str, np.ndarray]) -> Tensors:
    return {k: torch.from_numpy(v) for k, v in variables.items() if v.dtype == np.float32}


def norm(t: Tensors, src: str, dst: str) -> Tensors:
    return {f"{dst}.weight": t[f"{src}/gamma"], f"{dst}.bias": t[f"{src}/beta"]}


def linear(t: Tensors, src: str, dst: str) -> Tensors:
    return {f"{dst}.weight": t[f"{src}/weight"], f"{dst}.bias": t[f"{src}/bias"]}


def attention_and_ffn(t: Tensors, src: str, dst: str) -> Tensors:
    """What every Whisper layer has, under transformers' names: self-attention (CTranslate2's fused q/k/v
    projection split; Whisper's key projection has no bias) and the feed-forward block, each with its pre-norm."""
    q, k, v = t[f"{src}/self_attention/linear_0/weight"].chunk(3)
    qb, _, vb = t[f"{src}/self_attention/linear_0/bias"].chunk(3)
    state = {
        f"{dst}.self_attn.q_proj.weight": q,
        f"{dst}.self_attn.q_proj.bias": qb,
        f"{dst}.self_attn.k_proj.weight": k,
        f"{dst}.self_attn.v_proj.weight": v,
        f"{dst}.self_attn.v_proj.bias": vb,
    }
    state |= linear(t, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
    state |= norm(t, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    state |= linear(t, f"{src}/ffn/linear_0", f"{dst}.fc1") | linear(t, f"{src}/ffn/linear_1", f"{dst}.fc2")
    return state | norm(t, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")


def encoder_state(variables: dict[str, np.ndarray], positions: int) -> Tensors:
    """CTranslate2's encoder tensors under transformers' names, positional embeddings cut to `positions`."""
    t = float_tensors(variables)
    state = linear(t, "encoder/conv1", "conv1") | linear(t, "encoder/conv2", "conv2")
    state |= norm(t, "encoder/layer_norm", "layer_norm")
    state["embed_positions.weight"] = t["encoder/position_encodings/encodings"][:positions]
    for layer in range(encoder_shape(variables)["encoder_layers"]):
        state |= attention_and_ffn(t, f"encoder/layer_{layer}", f"layers.{layer}")
    return state


def pretrained_encoder(name: str) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """(shape, CTranslate2 encoder tensors) of a bundled Whisper model, its files checked by sha256."""
    variables = read_variables(weight_files(name)["model.bin"], "encoder/")
    return encoder_shape(variables), variables


class WhisperAudioClassifier(nn.Module):
    """(B, clip_samples) 16 kHz waveform -> Whisper log-mel -> encoder -> mean over time -> dropout -> linear."""

    def __init__(
        self, num_classes: int, shape: dict[str, int], clip_samples: int, dropout: float = 0.1, max_hz: float = 8000.0
    ) -> None:
        super().__init__()
        if clip_samples % CLIP_QUANTUM or not 0 < clip_samples // CLIP_QUANTUM <= MAX_POSITIONS:
            raise ValueError(f"clip_samples must be a multiple of {CLIP_QUANTUM} up to 30 s, not {clip_samples}")
        self.positions = clip_samples // CLIP_QUANTUM
        self.frontend = WhisperLogMel(shape["num_mel_bins"], max_hz)
        self.encoder = WhisperEncoder(encoder_config(shape, self.positions))
        self.dim = shape["d_model"]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.dim, num_classes))

    def load_pretrained(self, variables: dict[str, np.ndarray]) -> None:
        missing, unexpected = self.encoder.load_state_dict(encoder_state(variables, self.positions), strict=False)
        if unexpected or missing:
            raise ValueError(f"Whisper encoder weights do not fit: missing {missing}, unexpected {unexpected}")

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.frontend(wave)).last_hidden_state  # (B, positions, d_model)
        return hidden.mean(1)  # (B, d_model)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(wave))  # (B, num_classes)


class WhisperHiddenStates(nn.Module):
    """A frozen Whisper encoder as a feature extractor for recordings of any length up to 30 s: (B, N) 16 kHz
    waveforms and their valid sample counts -> every layer's output (B, layers, positions, d_model), one position
    per 20 ms, and the valid positions. Padding is masked out of attention, so a recording's features do not
    depend on the recordings it is batched with."""

    def __init__(self, shape: dict[str, int], max_hz: float = 8000.0) -> None:
        super().__init__()
        self.frontend = WhisperLogMel(shape["num_mel_bins"], max_hz)
        self.encoder = WhisperEncoder(encoder_config(shape, MAX_POSITIONS))
        self.requires_grad_(False)

    def load_pretrained(self, variables: dict[str, np.ndarray]) -> None:
        missing, unexpected = self.encoder.load_state_dict(encoder_state(variables, MAX_POSITIONS), strict=False)
        if unexpected or missing:
            raise ValueError(f"Whisper encoder weights do not fit: missing {missing}, unexpected {unexpected}")

    @staticmethod
    def positions(lengths: torch.Tensor) -> torch.Tensor:
        """Encoder positions covering `lengths` samples (a started 20 ms counts)."""
        return torch.div(lengths + CLIP_QUANTUM - 1, CLIP_QUANTUM, rounding_mode="floor")

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # zeros after every recording (at least 20 ms), and the convolutions see zeros past each one's end, as
        # when it is encoded alone: its features are the same in any batch
        if wave.shape[1] > MAX_POSITIONS * CLIP_QUANTUM:
            raise ValueError(f"Whisper's encoder takes at most 30 s; got {wave.shape[1] / SAMPLE_RATE:.1f} s")
        wave = F.pad(wave, (0, -wave.shape[1] % CLIP_QUANTUM + CLIP_QUANTUM))
        enc = self.encoder
        valid = self.positions(lengths)
        mel = self.frontend(wave)  # (B, n_mels, 2T)
        frames = (torch.arange(mel.shape[-1], device=mel.device)[None, :] < 2 * valid[:, None]).unsqueeze(1)
        x = F.gelu(enc.conv1(mel * frames)) * frames
        x = F.gelu(enc.conv2(x)).transpose(1, 2)[:, :MAX_POSITIONS]  # (B, T, d_model); past 30 s only padding
        x = x + enc.embed_positions.weight[: x.shape[1]]
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= valid[:, None]  # (B, T)
        mask = torch.zeros(padding.shape, dtype=x.dtype, device=x.device).masked_fill(padding, float("-inf"))
        mask = mask[:, None, None, :]  # keys only: every query attends to its own recording's positions
        states = []
        for layer in enc.layers:
            x = layer(x, mask)
            states.append(x)
        states[-1] = enc.layer_norm(x)
        return torch.stack(states, 1), valid
