"""The speech recogniser trained here: `CTCRecognizer` (log-mel, or a frozen pretrained Whisper encoder -> BiLSTM ->
characters) trained with CTC by the shared loop on the user's own recordings, decoded greedily or with a beam, a
character n-gram and a lexicon bias.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from modelyard.data.audio import SAMPLE_RATE, read_audio
from modelyard.data.audio_augment import coloured_noise, looped_crop
from modelyard.fsutil import atomic_write_json
from modelyard.learners.speech_common import Transcriber
from modelyard.models.ctc import CTCConfig, CTCRecognizer
from modelyard.models.ctc_decoder import (
    CharNgram,
    DecodeOptions,
    build_alphabet,
    clean_transcript,
    decode,
    lexicon_prefixes,
    train_ngram,
)
from modelyard.models.tokenizers import cjk_share
from modelyard.models.whisper_encoder import WhisperHiddenStates, pretrained_encoder
from modelyard.runtimes.protocol import ONNX_FILE, OnnxGraph
from modelyard.runtimes.torch_int8 import load_weights
from modelyard.training.checkpoint import save_weights

if TYPE_CHECKING:
    import pandas as pd

BACKBONE = "ctc-lstm"
DEFAULTS = {
    "epochs": 20,
    "batch_size": 32,
    "learning_rate": 2e-3,
    "scheduler": "cosine",
    "warmup_ratio": 0.05,
    "precision": "fp32",  # bf16 autocast made LSTM steps slower on this CPU, not faster
}
# on a frozen Whisper encoder's features the LSTM converges sooner (2,000 digit strings: 14 epochs, 7 minutes here)
ENCODER_DEFAULTS = {**DEFAULTS, "epochs": 14}
PREDICT_BATCH = 16
# digit strings, a training voice held out (benchmarks/speech_targets.py loso, 2 voices): WER 20.2% with all 64
# bands, 15.8% with 13 cepstra, 17.0% with conv2d subsampling over the bands; 20 cepstra 12.7% vs 13's 10.8% (1 voice)
AUTO_CEPSTRA = 13
NOISE_BANK_SECONDS = 30.0  # white, pink and brown noise made once at this length, cropped per recording
CACHE_LIMIT_BYTES = 2 * 1024**3  # training audio held in memory as int16 up to this size, else read per step
STATES_LIMIT_BYTES = 6 * 1024**3  # frozen encoder states held as float16 up to this size, else recomputed per step


def read_saved(directory: Path) -> tuple[dict[str, Any], list[str], CharNgram | None]:
    """A CTC bundle's spec, alphabet and character LM (absent when the LM was off)."""
    spec = json.loads((directory / "speech_model.json").read_text(encoding="utf-8"))
    alphabet = json.loads((directory / "alphabet.json").read_text(encoding="utf-8"))
    lm_path = directory / "char_lm.json"
    lm = CharNgram.from_state(json.loads(lm_path.read_text(encoding="utf-8"))) if lm_path.is_file() else None
    return spec, alphabet, lm


class SpeechDataset(torch.utils.data.Dataset):
    """Rows of (path, text): int16 samples cached in memory; when training, speed, gain and (optionally) added
    white, pink or brown noise at a random SNR are drawn per sample."""

    def __init__(
        self,
        paths: list[str],
        targets: list[list[int]],
        seconds: list[float],
        training: bool,
        seed: int,
        speed: tuple[float, float] = (0.9, 1.1),
        noise_snr_db: tuple[float, float] | None = None,
    ):
        self.paths, self.targets, self.seconds, self.training = paths, targets, seconds, training
        self.speed, self.noise_snr_db = speed, noise_snr_db
        self.rng = np.random.default_rng(seed)
        self.cache: dict[int, np.ndarray] = {}
        self.noise_bank: list[np.ndarray] = []
        self.cacheable = sum(seconds) * SAMPLE_RATE * 2 < CACHE_LIMIT_BYTES

    def __len__(self) -> int:
        return len(self.paths)

    def samples(self, i: int) -> np.ndarray:
        if i in self.cache:
            return self.cache[i].astype(np.float32) / 32767.0
        audio = read_audio(Path(self.paths[i]))[0]
        if self.cacheable:
            self.cache[i] = np.round(audio * 32767.0).astype(np.int16)
        return audio

    def noise(self, size: int) -> np.ndarray:
        """`size` samples of white, pink or brown noise at unit RMS: a random crop of one of three buffers made
        once (shaping fresh noise cost 2 ms per 4-second recording, 26 ms before `coloured_noise` used fast FFT
        lengths; a crop costs nothing measurable)."""
        if not self.noise_bank:
            length = int(NOISE_BANK_SECONDS * SAMPLE_RATE)
            self.noise_bank = [coloured_noise(length, self.rng, exponent) for exponent in (0.0, 1.0, 2.0)]
        return looped_crop(self.noise_bank[self.rng.integers(len(self.noise_bank))], size, self.rng)

    def __getitem__(self, i: int) -> dict[str, Any]:
        audio = self.samples(i)
        if self.training:
            speed = self.rng.uniform(*self.speed)
            if speed != 1.0:  # tempo and pitch together (Kaldi-style speed perturbation), by interpolation
                positions = np.arange(0, audio.size - 1, speed)
                audio = np.interp(positions, np.arange(audio.size), audio).astype(np.float32)
            if self.noise_snr_db is not None and audio.size:
                level = np.sqrt(np.mean(audio**2)) * 10 ** (-self.rng.uniform(*self.noise_snr_db) / 20)
                audio = audio + self.noise(audio.size) * np.float32(level)
            audio = audio * np.float32(10 ** (self.rng.uniform(-6, 6) / 20))
        return {"wave": audio, "targets": self.targets[i]}


class EncodedSpeechDataset(torch.utils.data.Dataset):
    """Rows of (path, text) as the frozen encoder's states of each recording, computed once (alone, so batching
    cannot change them) and kept as float16 while they fit in `STATES_LIMIT_BYTES`. The recordings are encoded as
    they are: augmentation is the model's time masks on these states."""

    def __init__(self, paths: list[str], targets: list[list[int]], seconds: list[float], encoder: WhisperHiddenStates):
        self.paths, self.targets, self.seconds, self.encoder = paths, targets, seconds, encoder
        layers, width = encoder.encoder.config.encoder_layers, encoder.encoder.config.d_model
        per_second = layers * width * 2 * SAMPLE_RATE / 320  # float16 bytes: one position per 20 ms
        self.cacheable = sum(seconds) * per_second < STATES_LIMIT_BYTES
        self.cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.paths)

    @torch.inference_mode()
    def states(self, i: int) -> torch.Tensor:
        if i in self.cache:
            return self.cache[i].float()
        audio = read_audio(Path(self.paths[i]))[0]
        device = next(self.encoder.parameters()).device
        wave = torch.from_numpy(audio)[None].to(device)
        hidden, positions = self.encoder(wave, torch.tensor([audio.size], device=device))
        states = hidden[0, :, : int(positions[0])].cpu()  # (layers, positions, d_model)
        if self.cacheable:
            self.cache[i] = states.half()
        return states

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"hidden": self.states(i), "targets": self.targets[i]}


def cepstra_for(setting: int | str | None, texts: list[str]) -> int | None:
    """The cepstral coefficients to keep: `auto` is MFCC's usual 13, or every band (None) for transcripts mostly in
    CJK scripts, whose tones (Chinese) are carried by the pitch harmonics that the cepstra smooth away."""
    if setting != "auto":
        return setting
    return None if cjk_share(texts) >= 0.5 else AUTO_CEPSTRA


class CTCSpeechLearner(Transcriber):
    """Alphabet, acoustic model, decoder options and the optional character LM / lexicon."""

    def __init__(
        self,
        module: CTCRecognizer | None,
        alphabet: list[str],
        spec: dict[str, Any],
        lm: CharNgram | None = None,
    ) -> None:
        self.module = module
        self.alphabet = alphabet
        self.index = {ch: i for i, ch in enumerate(alphabet)}
        self.settings = spec  # what `load` rebuilds the recogniser from (speech_model.json)
        self.backbone = BACKBONE
        self.precision = "fp32"
        self.lm = lm
        self.options = DecodeOptions(**spec["decoding"])
        self.prefixes = lexicon_prefixes(spec.get("lexicon", []))
        self.seed = 0

    @classmethod
    def scratch(cls, options: Any, texts: list[str], max_hz: float = 8000.0) -> CTCSpeechLearner:
        """A new recogniser for the characters of `texts`, its log-mel bands spread over 20 Hz-`max_hz` (the
        spectrum every training recording has); on `options.encoder`'s frozen pretrained Whisper encoder (spectrum
        above `max_hz` dropped) when one is named."""
        alphabet = build_alphabet(texts)
        encoder = None
        if options.encoder:
            shape, variables = pretrained_encoder(options.encoder)
            encoder = {"name": options.encoder, "shape": shape, "max_hz": max_hz}
        cfg = CTCConfig(
            vocab_size=len(alphabet),
            n_mels=options.n_mels,
            conv_channels=options.conv_channels,
            hidden_size=options.hidden_size,
            layers=options.layers,
            dropout=options.dropout,
            vtlp=options.vtlp,
            cepstra=None if encoder else cepstra_for(options.cepstra, texts),
            subsampling=options.subsampling,
            frontend={} if encoder else {"f_max": max_hz},
            encoder=encoder,
        )
        decoding = options.decoding.model_dump()
        lexicon = list(options.lexicon)
        order = decoding.pop("lm_order")
        lm = train_ngram(texts, lexicon, order) if decoding["lm_weight"] > 0 else None
        noise = options.noise_snr_db and list(options.noise_snr_db)
        augment = {"speed": list(options.speed_perturbation), "noise_snr_db": noise}  # training only
        spec = {"backbone": BACKBONE, "model": cfg.as_dict(), "decoding": decoding, "lexicon": lexicon}
        spec["augment"] = augment
        module = CTCRecognizer(cfg)
        if encoder is not None:
            module.encoder.load_pretrained(variables)
        return cls(module, alphabet, spec, lm)

    @classmethod
    def load(cls, directory: Path) -> CTCSpeechLearner:
        spec, alphabet, lm = read_saved(directory)
        module = load_weights(CTCRecognizer(CTCConfig(**spec["model"])), directory / "model.safetensors")
        return cls(module.eval(), alphabet, spec, lm)

    def train_defaults(self) -> dict[str, Any]:
        return dict(ENCODER_DEFAULTS if self.settings["model"].get("encoder") else DEFAULTS)

    def encode_text(self, text: str) -> list[int]:
        return [self.index[ch] for ch in clean_transcript(text) if ch in self.index]

    def dataset(self, data: pd.DataFrame, training: bool) -> SpeechDataset | EncodedSpeechDataset:
        targets = [self.encode_text(t) for t in data["text"]]
        module = getattr(self.module, "module", self.module)
        if module.cfg.encoder is not None:
            return EncodedSpeechDataset(list(data["path"]), targets, list(data["seconds"]), module.encoder)
        augment = self.settings.get("augment", {})  # absent in bundles made before these options
        speed, noise = tuple(augment.get("speed", (0.9, 1.1))), augment.get("noise_snr_db")
        return SpeechDataset(
            list(data["path"]), targets, list(data["seconds"]), training, self.seed, speed, noise and tuple(noise)
        )

    def lengths(self, dataset: SpeechDataset | EncodedSpeechDataset) -> list[float]:
        return dataset.seconds

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "hidden" in items[0]:  # precomputed encoder states (layers, positions, d_model), padded with zeros
            layers, _, width = items[0]["hidden"].shape
            hidden = torch.zeros(len(items), layers, max(x["hidden"].shape[1] for x in items), width)
            for row, item in enumerate(items):
                hidden[row, :, : item["hidden"].shape[1]] = item["hidden"]
            batch = {"hidden": hidden, "lengths": torch.tensor([x["hidden"].shape[1] for x in items])}
        else:
            width = max(len(x["wave"]) for x in items)
            wave = torch.zeros(len(items), width)
            for row, item in enumerate(items):
                wave[row, : len(item["wave"])] = torch.from_numpy(np.asarray(item["wave"], dtype=np.float32))
            batch = {"wave": wave, "lengths": torch.tensor([len(x["wave"]) for x in items])}
        if "targets" in items[0]:
            batch["targets"] = torch.tensor([t for x in items for t in x["targets"]], dtype=torch.long)
            batch["target_lengths"] = torch.tensor([len(x["targets"]) for x in items])
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, frames = self.module(batch.get("wave"), batch["lengths"], batch.get("hidden"))
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        return F.ctc_loss(log_probs, batch["targets"], frames, batch["target_lengths"], blank=0, zero_infinity=True)

    def log_probs(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """(frames, vocab) log-probabilities per recording, in length-sorted batches."""
        order = np.argsort([a.size for a in batch], kind="stable")
        out: list[np.ndarray | None] = [None] * len(batch)
        for start in range(0, len(order), PREDICT_BATCH):
            chosen = order[start : start + PREDICT_BATCH]
            collated = self.collate([{"wave": batch[i]} for i in chosen])
            logits, frames = self._run(collated["wave"], collated["lengths"])
            for row, i in enumerate(chosen):
                out[i] = logits[row, : int(frames[row])]
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _run(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        logits, frames = module(wave.to(device), lengths.to(device))
        module.train(was_training)
        return F.log_softmax(logits.float(), dim=-1).cpu().numpy(), frames.cpu().numpy()

    def transcribe(self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None) -> list[str]:
        # shorter than one STFT window: pad with silence so every input gives at least one frame
        padded = [a if a.size >= 400 else np.pad(a, (0, 400 - a.size)) for a in batch]
        return [decode(lp, self.alphabet, self.options, self.lm, self.prefixes) for lp in self.log_probs(padded)]

    def save(self, directory: Path) -> dict[str, Any]:
        if self.module is not None:
            save_weights(getattr(self.module, "module", self.module), directory / "model.safetensors")
        atomic_write_json(directory / "speech_model.json", self.settings)
        atomic_write_json(directory / "alphabet.json", self.alphabet)
        if self.lm is not None:
            atomic_write_json(directory / "char_lm.json", self.lm.state())
        return {"alphabet_size": len(self.alphabet)}

    def onnx_graph(self) -> OnnxGraph:
        """Logits and valid frame counts from padded 16 kHz waveforms; dynamic in batch and samples."""
        module = getattr(self.module, "module", self.module)
        batch = self.collate([{"wave": np.zeros(16000, np.float32)}, {"wave": np.zeros(12000, np.float32)}])
        axes = {"wave": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "logits": {0: "batch", 1: "frames"}}
        axes["frames"] = {0: "batch"}
        return OnnxGraph(module, (batch["wave"], batch["lengths"]), ["wave", "lengths"], ["logits", "frames"], axes)


class OnnxCTCSpeechLearner(CTCSpeechLearner):
    """The same recogniser (alphabet, decoder, LM) answering through ONNX Runtime."""

    def __init__(self, session_path: Path, alphabet: list[str], spec: dict[str, Any], lm: CharNgram | None):
        from modelyard.runtimes.onnx_session import onnx_session

        super().__init__(None, alphabet, spec, lm)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path) -> OnnxCTCSpeechLearner:
        spec, alphabet, lm = read_saved(directory)
        return cls(directory / ONNX_FILE, alphabet, spec, lm)

    def _run(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        logits, frames = self.session.run(["logits", "frames"], {"wave": wave.numpy(), "lengths": lengths.numpy()})
        return F.log_softmax(torch.from_numpy(logits).float(), dim=-1).numpy(), frames

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        return super().save(directory)
