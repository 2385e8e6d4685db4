"""Audio classification (keyword spotting, voice commands, sound events): a log-mel CNN or CRNN from scratch,
beside MFCC statistics + logistic regression. Splits hold out whole speakers when the data names them."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import soundfile as sf
from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig, StrictModel
from modelyard.data import audio
from modelyard.data.images import split_folders
from modelyard.data.splits import fingerprint, make_splits
from modelyard.errors import ConfigError, DataError, ModelNotFoundError
from modelyard.learners.audio import (
    BACKBONES,
    PRETRAINED,
    AudioClassifierLearner,
    OnnxAudioClassifierLearner,
    WaveStore,
)
from modelyard.learners.mfcc_logreg import mfcc_logreg_baseline
from modelyard.metrics.classification import METRIC_NAMES
from modelyard.models.whisper_ct2 import check_installed
from modelyard.protocols import PreparedData
from modelyard.tasks import register_task
from modelyard.tasks._labels import drop_unseen_labels

AUTO = "whisper-tiny.en"  # measured on unseen voices: 99.5% vs the CNN's 94.0% (README, Audio classification)

STARTER = """\
# modelyard config: audio classification (keyword spotting, voice commands, sound events)
name: my-audio-classifier
task: audio_classification
data:
  train: data/audio                 # a folder of class subfolders (or with train/ val/ test/ inside it), a flat
                                    #   folder with data.filename_pattern, or a .csv/.jsonl of paths and labels
  validation: null                  # optional; carved from train when absent (so is test)
  test: null
  split: {validation: 0.1, test: 0.2, seed: 42}   # by whole speakers when speakers are known
  audio_column: audio               # CSV/JSONL only: paths relative to that file's folder
  label_column: label
  speaker_column: null              # CSV/JSONL: who speaks; no voice is then in both train and test
                                    #   (rows naming no one stay in train)
  filename_pattern: null            # folders: a regex naming label/speaker, e.g. '^(?P<label>\\d)_(?P<speaker>\\w+?)_'
  test_speakers: null               # e.g. [anna, bob]: hold out exactly these voices for testing (not with
                                    #   data.test)
  noise: null                       # a folder of background recordings mixed in during training
model:
  backbone: auto                    # auto (= whisper-tiny.en) | whisper-base (99 languages): pretrained Whisper
                                    #   encoders, fine-tuned | cnn (2-D) | tcnn (1-D, 3x faster) | crnn: from scratch
  clip_seconds: null                # null = the 95th percentile of training durations
  features: logmel                  # from scratch: logmel | mfcc (saved in the bundle; serving uses the same front end)
  augment: auto                     # auto (= speech) | speech (speed, shift, noise, gain) | noise (no speed) | none
  max_seconds: 60                   # longer files are skipped in the data and refused by predict and serve
train:
  epochs: null                      # null = the backbone's tuned default
  early_stopping: {patience: 8, metric: accuracy}
"""


class SpecAugmentConfig(StrictModel):
    freq: int = Field(8, ge=0, description="widest frequency mask in mel bins")
    time: int = Field(10, ge=0, description="widest time mask in 10 ms frames")
    masks: int = Field(2, ge=0, description="masks of each kind per example")
    shift: int = Field(0, ge=0, description="move the spectrum up or down by up to this many mel bands")


class AudioDataConfig(DataConfig):
    audio_column: str = Field("audio", description="CSV/JSONL column of audio paths (relative to the file)")
    label_column: str = Field("label", description="CSV/JSONL column with the class")
    speaker_column: str | None = Field(None, description="CSV/JSONL column naming the speaker: split by speaker")
    filename_pattern: str | None = Field(
        None, description="folders: regex searched in each file name, named groups `label` and/or `speaker`"
    )
    test_speakers: list[str] | None = Field(None, description="hold out exactly these speakers as the test split")
    noise: str | None = Field(None, description="a folder of background-noise recordings for augmentation")


class AudioModelConfig(ModelConfig):
    backbone: str = Field(
        "auto",
        description="auto (= whisper-tiny.en), whisper-tiny.en or whisper-base (pretrained Whisper encoders, "
        "fine-tuned from a linear-probe head), or from scratch: cnn (2-D), tcnn (1-D temporal CNN) or crnn",
    )
    clip_seconds: float | None = Field(None, gt=0, le=30, description="model input length; null = from the data")
    features: Literal["logmel", "mfcc"] = "logmel"
    n_mels: int = Field(40, ge=16, le=128)
    mean_norm: bool = Field(
        False, description="subtract each mel band's mean over the sounding frames (removes microphone colouring)"
    )
    widths: list[int] | None = Field(
        None, min_length=2, description="channels of the stem and each stage; null = the backbone's default"
    )
    dropout: float = Field(0.3, ge=0, lt=1)
    augment: Literal["auto", "speech", "noise", "none"] = "auto"
    snr_db: tuple[float, float] = Field((5.0, 30.0), description="background noise SNR range in dB")
    speed_spread: float = Field(
        0.1, ge=0, le=0.3, description="augment: speech changes speed (tempo and pitch) by up to this share"
    )
    vtlp: float = Field(
        0.0,
        ge=0,
        le=0.3,
        description="log-mel only: warp each training clip's frequency axis by up to this share either way "
        "(vocal-tract-length perturbation: other voices)",
    )
    spec_augment: SpecAugmentConfig = Field(default_factory=SpecAugmentConfig)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    max_seconds: float = Field(60.0, gt=0, le=36000, description="longest audio read, predicted or served")


AudioInput = Annotated[
    str,
    Field(
        description="an audio file's bytes (WAV, FLAC, OGG, MP3), base64-encoded (a data: URL works too)",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": "audio/*"},
    ),
]


def _listing(location: str, data: AudioDataConfig, warnings: list[str]) -> tuple[dict[str, pd.DataFrame], Path]:
    path = Path(location)
    if not path.exists():
        raise DataError(f"data path not found: {path}", "audio data is a folder of class subfolders or a CSV/JSONL")
    if path.is_file():
        columns = {"label": data.label_column} | ({"speaker": data.speaker_column} if data.speaker_column else {})
        # every listed column is optional: a row without a speaker is kept, one without a label is named below
        rows = audio.list_table(path, data.audio_column, columns, data.format, data.max_rows, tuple(columns), warnings)
        unlabelled = rows["label"].isna()
        if unlabelled.any():
            first = rows["file"][unlabelled].iloc[0]
            warnings.append(
                f"{path}: {int(unlabelled.sum())} rows without a {data.label_column!r} dropped (first: {first})"
            )
        return {"train": rows[~unlabelled].reset_index(drop=True)}, path.parent
    folders = split_folders(path)
    return {name: audio.list_folder(folder, data.filename_pattern) for name, folder in folders.items()}, path


def _splits(checked: dict[str, pd.DataFrame], data: AudioDataConfig) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Train, validation and test: a given split (data.validation / data.test, or a folder's val/ test/) is used
    as it is and nothing is carved from train for it; the others are carved from train, by whole speakers when
    the data names them (data.test_speakers: exactly those voices, whatever data.split.test says)."""
    train = checked["train"]
    given = {name: checked[name] for name in ("validation", "test") if name in checked}
    if data.test_speakers and "test" in given:
        raise ConfigError(
            "data.test_speakers and a given test split (data.test, or a test/ folder in data.train) both name the "
            "test data",
            "keep one: drop data.test_speakers to test on the given data, or drop data.test to hold out those voices",
        )
    by_speaker = "speaker" in train and train["speaker"].notna().any()
    if data.test_speakers and not by_speaker:
        raise DataError("data.test_speakers needs speakers", "set data.speaker_column or data.filename_pattern")
    shares = data.split.model_copy(update=dict.fromkeys(given, 0.0))
    if by_speaker and (shares.test > 0 or shares.validation > 0 or data.test_speakers):
        by_recording = (
            "data.speaker_column: null" if data.speaker_column else "no speaker group in data.filename_pattern"
        )
        splits, notes = audio.speaker_splits(train, shares, data.test_speakers, by_recording)
        splits |= given
    else:  # shares of 0 keep every file in train (`evaluate --data FILE` relies on it)
        splits, notes = make_splits(train, given.get("validation"), given.get("test"), data.split, "label")
    notes += [
        f"{name}: the given {name} data ({len(frame)} recordings), nothing carved from train"
        for name, frame in given.items()
    ]
    return splits, notes


def _durations(frame: pd.DataFrame) -> dict[str, float]:
    if frame.empty:
        return {}
    seconds = frame["seconds"]
    return {
        "total_minutes": round(float(seconds.sum()) / 60, 2),
        "min": round(float(seconds.min()), 3),
        "median": round(float(seconds.median()), 3),
        "p95": round(float(seconds.quantile(0.95)), 3),
        "max": round(float(seconds.max()), 3),
    }


def _split_summary(frame: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"recordings": len(frame), "classes": frame["label"].value_counts().sort_index().to_dict()}
    if "speaker" in frame:
        out["speakers"] = frame["speaker"].value_counts().sort_index().to_dict()
    return out


@register_task("audio_classification")
class AudioClassificationTask:
    DataConfig: ClassVar = AudioDataConfig
    ModelConfig: ClassVar = AudioModelConfig
    Input: ClassVar = AudioInput
    main_metric: ClassVar = "accuracy"
    validation_metrics: ClassVar = METRIC_NAMES
    greater_is_better: ClassVar = True

    @property
    def example_input(self) -> str:
        """Half a second of quiet noise as a base64 WAV: what the server predicts before it reports ready."""
        buffer = io.BytesIO()
        noise = np.random.default_rng(0).normal(0, 0.01, 8000).astype(np.float32)
        sf.write(buffer, noise, audio.SAMPLE_RATE, format="WAV", subtype="PCM_16")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        data: AudioDataConfig = config.data
        if data.noise and not Path(data.noise).is_dir():
            raise DataError(f"data.noise: no such folder: {data.noise}", "name a folder of background recordings")
        warnings: list[str] = []
        listings, root = _listing(data.train, data, warnings)
        roots = dict.fromkeys(listings, root)
        for name, location in (("validation", data.validation), ("test", data.test)):
            if location:
                given, roots[name] = _listing(location, data, warnings)
                listings[name] = given["train"]
        report = audio.AudioReport()
        checked: dict[str, pd.DataFrame] = {}
        for name, listing in listings.items():
            if data.max_rows is not None and len(listing) > data.max_rows:
                listing = listing.sample(n=data.max_rows, random_state=data.split.seed).sort_index()
            checked[name] = audio.verify(listing, roots[name], report, config.model.max_seconds)
        if checked["train"].empty:
            raise DataError(
                f"{data.train}: no usable audio in the training data",
                "see the skipped files in the data report (`modelyard validate CONFIG`)",
            )
        splits, notes = _splits(checked, data)
        by_speaker = "speaker" in splits["train"] and splits["train"]["speaker"].notna().any()
        if by_speaker:
            if unnamed := int(splits["train"]["speaker"].isna().sum()):
                warnings.append(f"{unnamed} training recordings name no speaker: kept in train, never held out")
            train_voices = set(splits["train"]["speaker"].dropna())
            for name in ("validation", "test"):
                shared = train_voices & set(splits[name].get("speaker", pd.Series(dtype=str)))
                if shared:
                    warnings.append(f"{name}: speakers also in train: {', '.join(sorted(shared)[:10])}")
        labels = sorted(splits["train"]["label"].unique())
        if len(labels) < 2:
            raise DataError(f"{data.train}: only one class ({labels[0]!r})", "classification needs two classes")
        drop_unseen_labels(splits, labels, data, warnings)
        splits = {name: frame.reset_index(drop=True) for name, frame in splits.items()}
        if report.skipped:
            warnings.append(f"skipped {sum(report.skipped.values())} unusable files: {dict(report.skipped)}")
        seen = set(splits["train"]["sha256"])
        leakage = {n: int(splits[n]["sha256"].isin(seen).sum()) for n in ("validation", "test")}
        warnings += [f"leakage: {c} {n} files are byte-identical to training files" for n, c in leakage.items() if c]
        train = splits["train"]
        summary = {
            "audio": report.as_dict(),
            "splits": {n: _split_summary(f) for n, f in splits.items()},
            "durations": _durations(train),
            "sample_rates": {str(k): int(v) for k, v in train["source_rate"].value_counts().items()},
            "speakers": int(train["speaker"].nunique()) if by_speaker else None,
            "split_notes": notes,
            "num_labels": len(labels),
            "leakage": leakage,
            "backbone": self._choose(config, train),
        }
        prints = {n: fingerprint(f.sort_values("file"), ["file", "sha256", "label"]) for n, f in splits.items()}
        return PreparedData(splits=splits, report=summary, fingerprints=prints, warnings=warnings)

    def _choose(self, config: Config, train: pd.DataFrame) -> dict[str, Any]:
        options: AudioModelConfig = config.model
        backbone = AUTO if options.backbone == "auto" else options.backbone
        if backbone not in BACKBONES:
            raise ModelNotFoundError(
                f"unknown backbone '{backbone}' for audio_classification", f"use auto, {', '.join(BACKBONES)}"
            )
        if backbone in PRETRAINED:
            check_installed(backbone)
        if options.clip_seconds:
            clip, why = options.clip_seconds, "named in the config"
        else:
            p95 = float(train["seconds"].quantile(0.95)) if len(train) else 1.0
            clip = float(np.clip(np.ceil(p95 * 10) / 10, 0.5, 10.0))
            why = f"95th percentile of training durations ({p95:.2f} s), rounded up"
        augment = "speech" if options.augment == "auto" else options.augment
        lowest = int(train["source_rate"].min()) if len(train) else audio.SAMPLE_RATE
        max_hz = float(min(audio.SAMPLE_RATE, lowest) // 2)
        return {
            "name": backbone,
            "clip_seconds": clip,
            "clip_reason": why,
            "augment": augment,
            "max_hz": max_hz,
            "max_hz_reason": f"the lowest training sample rate is {lowest} Hz: bands above {max_hz:g} Hz are left "
            "out, so recordings at higher rates look like the training data",
        }

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        name = data.report["backbone"]["name"]
        if name in PRETRAINED:
            return [(name, "a pretrained Whisper encoder, its head started as a linear probe, then fine-tuned")]
        return [(name, "a small log-mel network trained from scratch")]

    def build(self, config: Config, data: PreparedData) -> AudioClassifierLearner:
        choice = self._choose(config, data.splits["train"])
        options = config.model.model_copy(update={"backbone": choice["name"], "augment": choice["augment"]})
        labels = sorted(data.splits["train"]["label"].unique())
        clip, max_hz = choice["clip_seconds"], choice["max_hz"]
        learner = AudioClassifierLearner.create(labels, clip, options, config.data.noise, max_hz)
        if learner.pretrained:
            learner.start_head_from_probe(data.splits["train"])
        return learner

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        labels = sorted(data.splits["train"]["label"].unique())
        return {"mfcc_logreg": mfcc_logreg_baseline(data.splits, labels, WaveStore().get)}

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[str]:
        return audio.listed_paths(frame, config.data.audio_column)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> AudioClassifierLearner:
        runtime = OnnxAudioClassifierLearner if manifest.get("runtime") == "onnxruntime" else AudioClassifierLearner
        return runtime.load(directory, config.model, manifest["labels"])
