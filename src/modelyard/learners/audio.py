"""The audio classifier learner: 16 kHz clips at one level and a fixed length -> log-mel CNN (2-D), TCNN (1-D
over time) or CRNN from scratch, or a pretrained Whisper encoder (LP-FT: its head starts as logistic regression
on the frozen encoder's features) -> class probabilities.

The front end's parameters and the clip length are data (`audio_model.json`), and the front end is inside the
module: prediction, serving and the ONNX graph compute exactly the features the model was validated with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.data.audio import AudioError, audio_stats, payload_seconds, read_audio
from modelyard.data.audio_augment import Augmenter, model_input
from modelyard.data.payloads import payload_bytes
from modelyard.drift import features as input_features
from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_json
from modelyard.learners import linear_probe
from modelyard.metrics.classification import classification_metrics, top_k_answers
from modelyard.models.audio_cnn import AudioClassifier
from modelyard.models.audio_features import FrontEndConfig
from modelyard.models.whisper_encoder import CLIP_QUANTUM, WhisperAudioClassifier, pretrained_encoder
from modelyard.runtimes.onnx_session import onnx_session
from modelyard.runtimes.protocol import ONNX_FILE, OnnxGraph
from modelyard.runtimes.torch_int8 import load_weights
from modelyard.training.checkpoint import save_weights

SCRATCH = ("tcnn", "cnn", "crnn")
PRETRAINED = ("whisper-tiny.en", "whisper-base")  # encoders of the bundled Whisper transcribers
BACKBONES = SCRATCH + PRETRAINED
WIDTHS = {"tcnn": [48, 64, 96, 128], "cnn": [24, 48, 96], "crnn": [24, 48, 96]}
SPEC_FILE = "audio_model.json"
PREDICT_BATCH = 64
PROFILE_ROWS = 512  # files profiled for the drift reference
STAT_NAMES = ("duration", "loudness", "snr", "silence_share")
CACHE_BYTES = 1 << 30  # decoded training audio kept in memory (about 9 hours at 16 kHz float32)
# Measured on spoken digits, 4 speakers -> 2 unseen (1 thread): cnn 88% after 6 epochs, tcnn 82% (80% with
# mean_norm); tcnn trains ~3x faster (about 500 vs 170 clips per CPU-second). 2026-12-04, examples/spoken_digits.yaml
# (cnn, 8 epochs): 94.0%; with mean_norm + vtlp 0.15 + speed_spread 0.2 (best on a held-out training voice): 79.8%.
DEFAULTS = {
    name: {"epochs": 20, "batch_size": 32, "learning_rate": 3e-3, "scheduler": "cosine", "precision": "fp32"}
    for name in SCRATCH
} | {
    name: {"epochs": 3, "batch_size": 32, "learning_rate": 2e-5, "scheduler": "cosine", "precision": "fp32"}
    for name in PRETRAINED
}


class WaveStore:
    """Decoded 16 kHz waveforms by path, kept while they fit in CACHE_BYTES (files are decoded once per run)."""

    def __init__(self) -> None:
        self.waves: dict[str, np.ndarray] = {}
        self.bytes = 0

    def get(self, path: str) -> np.ndarray:
        wave = self.waves.get(path)
        if wave is None:
            wave = read_audio(Path(path))[0]
            if self.bytes + wave.nbytes <= CACHE_BYTES:
                self.waves[path] = wave
                self.bytes += wave.nbytes
        return wave


class AudioDataset(torch.utils.data.Dataset):
    """Clips fitted to `length` samples; augmented (seeded per item and epoch draw) when `augment` is given."""

    def __init__(
        self, paths: list[str], labels: list[int], store: WaveStore, length: int, augment: Augmenter | None
    ) -> None:
        self.paths, self.labels, self.store, self.length, self.augment = paths, labels, store, length, augment
        self.rng = np.random.default_rng(int(torch.initial_seed()) % (2**32))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        wave = self.store.get(self.paths[i])
        clip = self.augment(wave, self.length, self.rng) if self.augment else model_input(wave, self.length)
        return {"audio": torch.from_numpy(np.ascontiguousarray(clip)), "labels": self.labels[i]}


def build_module(spec: dict[str, Any]) -> nn.Module:
    if spec["backbone"] in PRETRAINED:
        return WhisperAudioClassifier(
            spec["num_classes"], spec["encoder"], spec["clip_samples"], spec["dropout"], spec["frontend"]["max_hz"]
        )
    return AudioClassifier(
        spec["num_classes"],
        FrontEndConfig(**spec["frontend"]),
        spec["backbone"],
        tuple(spec["widths"]),
        spec["dropout"],
        tuple(spec["spec_augment"]),
        spec["mean_norm"],
        spec.get("vtlp", 0.0),  # bundles written before the warp existed have none
    )


class AudioClassifierLearner:
    """A clip classifier and its front end; `architecture` (audio_model.json) is what `load` rebuilds it from."""

    buckets_lengths = True  # every input is fitted to one clip length: the server need not group by length

    def __init__(self, module: nn.Module | None, labels: list[str], spec: dict[str, Any], options: Any) -> None:
        self.noise_folder: str | None = None  # training only: background recordings to mix in
        self.module = module
        self.labels = labels
        self.architecture = spec
        self.backbone = spec["backbone"]
        self.options = options
        self.precision = "fp32"
        self.length = int(spec["clip_samples"])
        self.max_seconds = float(spec["max_seconds"])
        self.label_index = {label: i for i, label in enumerate(labels)}
        self.store = WaveStore()

    @classmethod
    def create(
        cls,
        labels: list[str],
        clip_seconds: float,
        options: Any,
        noise_folder: str | None = None,
        max_hz: float = 8000.0,
    ) -> AudioClassifierLearner:
        if options.backbone in PRETRAINED:
            return cls.create_pretrained(labels, clip_seconds, options, noise_folder, max_hz)
        frontend = FrontEndConfig(kind=options.features, n_mels=options.n_mels, f_max=max_hz)
        spec = {
            "backbone": options.backbone,
            "num_classes": len(labels),
            "clip_samples": round(clip_seconds * frontend.sample_rate),
            "max_seconds": options.max_seconds,
            "frontend": frontend.asdict(),
            "widths": list(options.widths or WIDTHS[options.backbone]),
            "dropout": options.dropout,
            "spec_augment": [
                options.spec_augment.freq,
                options.spec_augment.time,
                options.spec_augment.masks,
                options.spec_augment.shift,
            ],
            "mean_norm": options.mean_norm,
            "vtlp": options.vtlp,
        }
        learner = cls(build_module(spec), labels, spec, options)
        learner.noise_folder = noise_folder
        return learner

    @classmethod
    def create_pretrained(
        cls, labels: list[str], clip_seconds: float, options: Any, noise_folder: str | None, max_hz: float
    ) -> AudioClassifierLearner:
        """A Whisper encoder from its package's checked files, the clip a whole number of encoder positions."""
        shape, variables = pretrained_encoder(options.backbone)
        quanta = max(1, int(np.ceil(clip_seconds * 16000 / CLIP_QUANTUM)))
        spec = {
            "backbone": options.backbone,
            "num_classes": len(labels),
            "clip_samples": quanta * CLIP_QUANTUM,
            "max_seconds": options.max_seconds,
            "frontend": {"kind": "whisper", "sample_rate": 16000, "n_mels": shape["num_mel_bins"], "max_hz": max_hz},
            "encoder": shape,
            "dropout": options.dropout,
        }
        module = build_module(spec)
        module.load_pretrained(variables)
        learner = cls(module, labels, spec, options)
        learner.noise_folder = noise_folder
        return learner

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str]) -> AudioClassifierLearner:
        spec = read_spec(directory)
        module = load_weights(build_module(spec), directory / "model.safetensors").eval()
        return cls(module, labels, spec, options)

    def train_defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS[self.backbone])

    @property
    def pretrained(self) -> bool:
        return self.backbone in PRETRAINED

    @torch.no_grad()
    def start_head_from_probe(self, train: pd.DataFrame) -> None:
        """LP-FT's first half: logistic regression on the frozen encoder's pooled features of the training clips
        (fitted as evaluation sees them, no augmentation) becomes the head; fine-tuning then starts from it."""
        x = self._run([self.store.get(p) for p in train["path"]], "features")
        probe = linear_probe.fit_probe(x, train["label"].map(self.label_index).to_numpy())
        weight, bias = linear_probe.linear_head(probe)
        layer = self.module.head[-1]
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Pretrained encoders: no weight decay on norms and biases (Whisper's positional embeddings stay fixed).
        Networks from scratch: one group, decay everywhere."""
        module = getattr(self.module, "module", self.module)
        trained = [p for p in module.parameters() if p.requires_grad]
        if not self.pretrained:
            return [{"params": trained, "weight_decay": weight_decay}]
        decayed = [p for p in trained if p.ndim > 1]
        plain = [p for p in trained if p.ndim <= 1]
        return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]

    def dataset(self, data: pd.DataFrame, training: bool) -> AudioDataset:
        labels = data["label"].map(self.label_index).fillna(-1).astype(int).tolist()
        augment = None
        if training and self.options.augment != "none":
            augment = Augmenter.from_folder(
                self.noise_folder,
                speed=self.options.augment == "speech",
                speed_spread=self.options.speed_spread,
                snr_db=tuple(self.options.snr_db),
            )
        return AudioDataset(data["path"].tolist(), labels, self.store, self.length, augment)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "audio": torch.stack([x["audio"] for x in items]),  # (B, clip_samples)
            "labels": torch.tensor([x["labels"] for x in items]),
        }

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.module(batch["audio"])  # (B, num_classes)
        return F.cross_entropy(logits.float(), batch["labels"], label_smoothing=self.options.label_smoothing)

    def clips(self, waves: list[np.ndarray]) -> np.ndarray:
        """(N, clip_samples) float32: each waveform at one level and the model's fixed length (the loudest window
        of longer ones): what the network (torch or ONNX) is fed."""
        if not waves:
            return np.zeros((0, self.length), dtype=np.float32)
        return np.stack([model_input(w, self.length) for w in waves]).astype(np.float32)

    def _run(self, waves: list[np.ndarray], output: str) -> np.ndarray:
        parts = [
            self._run_batch(self.clips(waves[i : i + PREDICT_BATCH]), output)
            for i in range(0, len(waves), PREDICT_BATCH)
        ]
        width = len(self.labels) if output == "probabilities" else self.module_dim
        return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)

    @property
    def module_dim(self) -> int:
        if self.pretrained:
            return int(self.architecture["encoder"]["d_model"])
        return 2 * self.architecture["widths"][-1]

    @torch.inference_mode()
    def _run_batch(self, clips: np.ndarray, output: str) -> np.ndarray:
        module = getattr(self.module, "module", self.module)
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        x = torch.from_numpy(clips).to(device)
        out = module(x).softmax(-1) if output == "probabilities" else module.features(x)
        module.train(was_training)
        return out.float().cpu().numpy()

    def to_audio(self, item: Any) -> np.ndarray:
        """Python API / CLI inputs: a file path, bytes, base64 or a 16 kHz float waveform -> samples."""
        if isinstance(item, np.ndarray):
            return item.astype(np.float32, copy=False).reshape(-1)
        if isinstance(item, Path) or (isinstance(item, str) and len(item) < 4096 and Path(item).is_file()):
            try:
                return read_audio(Path(item), self.max_seconds)[0]
            except (AudioError, OSError) as err:
                raise DataError(f"{item}: cannot use this audio ({err})") from None
        try:
            return self.parse_input(item)
        except ValueError as err:
            raise DataError(f"input is neither an audio file nor base64 audio: {err}") from None

    def parse_input(self, item: Any) -> np.ndarray:
        """A request's audio (base64 string, data: URL or raw bytes) -> samples; ValueError says why not."""
        if isinstance(item, np.ndarray):
            return item
        data = payload_bytes(item, "audio")
        try:
            return read_audio(data, self.max_seconds)[0]
        except AudioError as err:
            raise ValueError(f"not usable audio: {err}") from None

    def input_seconds(self, item: Any) -> float:
        """A request's audio length from its header, before the server decodes it."""
        return payload_seconds(item)

    def describe_input(self, item: Any) -> dict[str, float]:
        """What the prediction log keeps of an input instead of the audio itself: drift features."""
        return audio_stats(self.to_audio(item))

    def reference_profile(self, splits: dict[str, Any]) -> dict[str, Any]:
        """Drift reference: bins of each `audio_stats` number over up to PROFILE_ROWS held-out-first files,
        training label shares and the predicted labels of those files."""
        frames = [splits[n] for n in ("validation", "test", "train") if n in splits and len(splits[n])]
        sample = pd.concat(frames).head(PROFILE_ROWS) if frames else pd.DataFrame({"path": []})
        rows = [audio_stats(self.store.get(p)) for p in sample["path"]]
        features = input_features.feature_bins(rows, STAT_NAMES)
        answers = pd.Series([a["label"] for a in self.predict(list(sample["path"]))], dtype=object).value_counts()
        shares = splits["train"]["label"].astype(str).value_counts(normalize=True).sort_index()
        return {
            "features": features,
            "feature_rows": len(rows),
            "labels": {
                "rows": len(splits["train"]),
                "distribution": {k: round(float(v), 6) for k, v in shares.items()},
            },
            "predicted": {"counts": {label: int(answers.get(label, 0)) for label in self.labels}},
        }

    def feature_drift(self, profile: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """PSI per logged audio number (duration, loudness, SNR, silence share) against the reference bins."""
        return input_features.feature_drift(profile, rows)

    def predict_proba(self, inputs: list[Any]) -> np.ndarray:
        return self._run([self.to_audio(x) for x in inputs], "probabilities")

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        return top_k_answers(self.predict_proba(inputs), self.labels, top_k)

    def embed(self, inputs: list[Any]) -> np.ndarray:
        """Pooled network features (drift monitoring)."""
        return self._run([self.to_audio(x) for x in inputs], "features")

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        known = data[data["label"].isin(self.label_index)]
        if known.empty:
            return {}
        probs = self._run([self.store.get(p) for p in known["path"]], "probabilities")
        y_true = known["label"].map(self.label_index).tolist()
        return classification_metrics(y_true, probs.argmax(1).tolist(), self.labels)

    def save(self, directory: Path) -> dict[str, Any]:
        save_weights(getattr(self.module, "module", self.module), directory / "model.safetensors")
        atomic_write_json(directory / SPEC_FILE, self.architecture)
        return {"labels": self.labels, "sample_rate": self.architecture["frontend"]["sample_rate"]}

    def onnx_graph(self) -> OnnxGraph:
        """Logits and pooled features from fitted 16 kHz clips (B, clip_samples), the front end included."""
        module = getattr(self.module, "module", self.module)
        audio = torch.zeros(2, self.length)
        axes = {"audio": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}}
        return OnnxGraph(_LogitsAndFeatures(module), (audio,), ["audio"], ["logits", "features"], axes, "dynamic")

    def export_examples(self, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        known = data[data["label"].isin(self.label_index)]
        return known["path"].tolist(), known["label"].map(self.label_index).to_numpy()

    def export_outputs(self, inputs: list[Any]) -> np.ndarray:
        return self.predict_proba(inputs)


def read_spec(directory: Path) -> dict[str, Any]:
    return json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))


class _LogitsAndFeatures(nn.Module):
    def __init__(self, classifier: AudioClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.classifier.features(audio)  # (B, D)
        return self.classifier.head(features), features  # (B, num_classes), (B, D)


class OnnxAudioClassifierLearner(AudioClassifierLearner):
    """The same classifier (clip length, labels) answering through ONNX Runtime."""

    def __init__(self, session_path: Path, labels: list[str], spec: dict[str, Any], options: Any) -> None:
        super().__init__(None, labels, spec, options)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str]) -> OnnxAudioClassifierLearner:
        return cls(directory / ONNX_FILE, labels, read_spec(directory), options)

    def _run_batch(self, clips: np.ndarray, output: str) -> np.ndarray:
        name = "logits" if output == "probabilities" else "features"
        out = torch.from_numpy(self.session.run([name], {"audio": clips})[0]).float()
        return (out.softmax(-1) if output == "probabilities" else out).numpy()

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        atomic_write_json(directory / SPEC_FILE, self.architecture)
        return {"labels": self.labels, "sample_rate": self.architecture["frontend"]["sample_rate"]}
