"""A bundled Whisper model fine-tuned on the user's recordings (`model.fine_tune: true`): the whole encoder-decoder
is trained by the shared loop with teacher forcing on the transcripts as written, with the CTC recogniser's
augmentation (speed, gain, optional noise), and transcribes greedily. The bundle holds the fine-tuned weights
and the tokenizer; nothing is read from the Whisper packages at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import WhisperConfig

from modelyard import precision as prec
from modelyard.fsutil import atomic_path, atomic_write_json
from modelyard.learners.speech_common import Transcriber
from modelyard.learners.speech_ctc import SpeechDataset
from modelyard.models.whisper_ct2 import WHISPER
from modelyard.models.whisper_seq2seq import WhisperRecognizer, pretrained_recognizer, prompt_tokens
from modelyard.runtimes.torch_int8 import is_quantized, load_weights

if TYPE_CHECKING:
    import pandas as pd

SPEC_FILE = "whisper_finetuned.json"
DEFAULTS = {
    "epochs": 1,
    "batch_size": 8,
    "learning_rate": 1e-5,
    "scheduler": "linear",
    "warmup_ratio": 0.05,
    "precision": "bf16",  # this CPU's bf16 matmuls are ~3x fp32's; digit strings: WER 2.27% (tiny.en), 2.49% (base)
}
PREDICT_BATCH = 8


class WhisperFineTuneLearner(Transcriber):
    """A `WhisperRecognizer`, its tokenizer and the prompt every transcript starts with."""

    def __init__(self, module: WhisperRecognizer, tokenizer: Tokenizer, spec: dict[str, Any]) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.spec = spec  # what `load` rebuilds the model from (whisper_finetuned.json)
        self.backbone = spec["backbone"]
        self.prompt = list(spec["prompt"])
        self.end = int(spec["end_token"])
        self.precision = "fp32"
        self.max_chunk_seconds = module.samples / 16000  # longer recordings are cut by voice activity
        self.seed = 0

    @classmethod
    def pretrained(cls, options: Any, longest_seconds: float, max_hz: float) -> WhisperFineTuneLearner:
        slowest = options.speed_perturbation[0]  # slowed-down training audio is longer: the input leaves room
        module, config, tokenizer = pretrained_recognizer(options.backbone, longest_seconds / slowest, max_hz)
        spec = {
            "backbone": options.backbone,
            "language": options.language,
            "prompt": prompt_tokens(tokenizer, options.backbone, options.language),
            "end_token": tokenizer.token_to_id("<|endoftext|>"),
            "max_hz": max_hz,
            "config": config,
            "augment": {"speed": list(options.speed_perturbation), "noise_snr_db": options.noise_snr_db},
        }
        return cls(module, tokenizer, spec)

    @classmethod
    def load(cls, directory: Path) -> WhisperFineTuneLearner:
        """The saved weights, or their int8 export (`modelyard export --format torch --quantize int8`), which then
        runs in fp32 (dynamic int8 kernels); otherwise at the precision the model was evaluated with."""
        spec = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
        module = WhisperRecognizer(build_config(spec["config"]), spec["max_hz"])
        weights = directory / "model.safetensors"
        int8 = is_quantized(weights)
        if int8:
            module = load_weights(module, weights)
        else:
            module.load_saved(load_file(str(weights)))
        learner = cls(module.eval(), Tokenizer.from_file(str(directory / "tokenizer.json")), spec)
        learner.precision = "fp32" if int8 else spec.get("precision", "fp32")
        return learner

    def train_defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def tokens(self, text: str) -> list[int]:
        """The training target: prompt, the transcript as written (leading space, as Whisper writes), end."""
        return self.prompt + self.tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids + [self.end]

    def dataset(self, data: pd.DataFrame, training: bool) -> SpeechDataset:
        augment = self.spec["augment"]
        noise = augment["noise_snr_db"]
        targets = [self.tokens(t) for t in data["text"]]
        return SpeechDataset(
            list(data["path"]), targets, list(data["seconds"]), training, self.seed, tuple(augment["speed"]),
            noise and tuple(noise),
        )  # fmt: skip

    def lengths(self, dataset: SpeechDataset) -> list[float]:
        return [float(len(t)) for t in dataset.targets]  # inputs all have one length; group by transcript length

    def fit_wave(self, wave: np.ndarray) -> np.ndarray:
        """Padded with silence (or cut) to the model's input length."""
        size = self.module.samples
        return np.pad(wave[:size], (0, max(0, size - wave.size))).astype(np.float32, copy=False)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        wave = torch.from_numpy(np.stack([self.fit_wave(np.asarray(x["wave"])) for x in items]))
        width = max(len(x["targets"]) for x in items)
        ids = torch.full((len(items), width - 1), self.end)
        labels = torch.full((len(items), width - 1), -100)
        start = len(self.prompt) - 1  # the prompt is given, not learnt
        for row, item in enumerate(items):
            sequence = torch.tensor(item["targets"])
            ids[row, : len(sequence) - 1] = sequence[:-1]
            labels[row, start : len(sequence) - 1] = sequence[len(self.prompt) :]
        return {"wave": wave, "decoder_input_ids": ids, "labels": labels}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.module(batch["wave"], batch["decoder_input_ids"])
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    @torch.inference_mode()
    def transcribe(self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None) -> list[str]:
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        budget = module.whisper.config.max_target_positions - len(self.prompt)
        out: list[str] = []
        for start in range(0, len(batch), PREDICT_BATCH):
            wave = torch.from_numpy(np.stack([self.fit_wave(a) for a in batch[start : start + PREDICT_BATCH]]))
            with prec.autocast(self.precision, device):
                generated = module.generate(wave.to(device), self.prompt, budget)
            out += [self.tokenizer.decode(row.tolist(), skip_special_tokens=True).strip() for row in generated]
        module.train(was_training)
        return out

    def transcribe_detected(
        self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None
    ) -> list[tuple[str, str | None]]:
        """Text of each recording and the language every transcript's prompt forces (English unless trained on
        another): a fine-tuned model detects none."""
        language = self.spec.get("language") or "en"
        return [(text, language) for text in self.transcribe(batch, hints)]

    def save(self, directory: Path) -> dict[str, Any]:
        module = getattr(self.module, "module", self.module)
        state = {k: v.detach().contiguous() for k, v in module.state_to_save().items()}
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        atomic_write_json(directory / SPEC_FILE, {**self.spec, "precision": self.precision})
        with atomic_path(directory / "tokenizer.json") as tmp:
            self.tokenizer.save(str(tmp))
        return {"weights_licence": WHISPER[self.backbone].licence, "fine_tuned_from": self.backbone}


def build_config(saved: dict[str, Any]) -> WhisperConfig:
    config = WhisperConfig(**saved)
    config._attn_implementation = "sdpa"
    return config
