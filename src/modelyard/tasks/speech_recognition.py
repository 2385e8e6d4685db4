"""Speech recognition (speech to text): a CTC recogniser trained from scratch on the user's recordings, or a
bundled Whisper model used zero-shot, which is also the strong baseline beside every trained model."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from modelyard.config import Config, DataConfig, ModelConfig, StrictModel
from modelyard.errors import ConfigError, DataError, ModelNotFoundError
from modelyard.protocols import PreparedData
from modelyard.tasks import register_task

if TYPE_CHECKING:
    import pandas as pd

CTC = "ctc-lstm"
WHISPER_NAMES = ("whisper-base", "whisper-tiny.en")

STARTER = """\
# modelyard config: speech recognition (speech to text)
name: my-transcriber
task: speech_recognition
data:
  train: data/train.csv             # CSV/JSONL manifest (audio_path,text[,speaker]) or a LibriSpeech-style folder
  test: null                        # optional; carved from train when absent (by speaker if there is a speaker column)
  split: {validation: 0.1, test: 0.1, seed: 42}
  audio_column: audio_path          # paths relative to the manifest's folder
  text_column: text
  speaker_column: speaker           # used when the manifest has it: no voice is in both train and test
  max_seconds: 35                   # training recordings longer than this are skipped (and named)
model:
  backbone: ctc-lstm                # ctc-lstm (trained here) | whisper-base (99 languages) | whisper-tiny.en
  encoder: null                     # ctc-lstm: null = from scratch | whisper-tiny.en, whisper-base = frozen front end
  fine_tune: false                  # Whisper: false = zero-shot; true = fine-tune it on these recordings
  lexicon: []                       # domain words to favour when decoding (drug names, product names)
  decoding: {method: beam, beam_size: 8, lm_order: 4, lm_weight: 0.3, lexicon_bonus: 1.0}
  baseline: whisper-base            # zero-shot Whisper scored beside the trained model (null: none)
train:
  epochs: null                      # null = the backbone's tuned default
  early_stopping: {patience: 5, metric: wer}
"""

AudioInput = Annotated[
    str,
    Field(
        description="an audio file's bytes (WAV, FLAC, OGG, MP3), base64-encoded (a data: URL works too)",
        json_schema_extra={"contentEncoding": "base64", "contentMediaType": "audio/*"},
    ),
]


class SpeechDataConfig(DataConfig):
    audio_column: str = "audio_path"
    text_column: str = "text"
    speaker_column: str | None = Field("speaker", description="split by speaker when the manifest has this column")
    test_speakers: list[str] | None = Field(None, description="hold out exactly these speakers for testing")
    max_seconds: float = Field(35.0, gt=0, description="longer training recordings are skipped")


class DecodingOptions(StrictModel):
    method: Literal["greedy", "beam"] = "beam"
    beam_size: int = Field(8, ge=1, le=128)
    lm_order: int = Field(4, ge=1, le=8, description="character n-gram order (from train transcripts + lexicon)")
    lm_weight: float = Field(0.3, ge=0, description="0 turns the n-gram off")
    lexicon_bonus: float = Field(1.0, ge=0, description="log-score bonus per character continuing a lexicon word")
    insertion_bonus: float = Field(0.0, description="log-score per emitted character (offsets the LM's cost)")


class SpeechModelConfig(ModelConfig):
    backbone: str = Field(CTC, description="ctc-lstm, whisper-base or whisper-tiny.en")
    n_mels: int = Field(64, ge=16, le=128)
    conv_channels: int = Field(128, ge=16)
    hidden_size: int = Field(128, ge=16, description="LSTM units per direction")
    layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.15, ge=0, lt=1)
    vtlp: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="training only: vocal-tract-length perturbation, each recording's frequency axis warped by a "
        "random factor in [1 - vtlp, 1 + vtlp], for voices not in the training data (digit strings, a held-out "
        "validation voice: WER 32% -> 19%; the test voices: 24.7% -> 23.7%); 0 turns it off",
    )
    cepstra: int | Literal["auto"] | None = Field(
        "auto",
        description="keep only this many cepstral coefficients (the DCT of the normalised log-mel bands, as MFCC): "
        "the spectral envelope that says which sound it is, without the fine detail (pitch harmonics) that says "
        "whose voice it is; auto: 13, or every band when the transcripts are mostly Chinese, Japanese or Korean "
        "(Chinese tones live in those harmonics); null: every band",
    )
    subsampling: Literal["conv1d", "conv2d"] = Field(
        "conv1d",
        description="the two stride-2 convolutions before the LSTM: conv1d treats the bands as channels; conv2d "
        "slides 3x3 filters over bands and time, so a voice's formants a few bands higher or lower meet the same "
        "filters",
    )
    speed_perturbation: tuple[float, float] = Field(
        (0.9, 1.1), description="training only: each recording played at a random speed in this range (tempo+pitch)"
    )
    noise_snr_db: tuple[float, float] | None = Field(
        None,
        description="training only: white, pink or brown noise added at a random SNR (dB) in this range; null: none",
    )
    encoder: str | None = Field(
        None,
        description="ctc-lstm: a bundled Whisper model (whisper-tiny.en, whisper-base) whose frozen encoder is the "
        "front end instead of log-mel features learned from scratch; only the LSTM-CTC on top is trained (digit "
        "strings of unseen voices: WER 14.5-15.6% from scratch, 2.0% on whisper-tiny.en's encoder). null: from scratch",
    )
    lexicon: list[str] = Field(default_factory=list, description="domain words and phrases to favour")
    decoding: DecodingOptions = Field(default_factory=DecodingOptions)
    fine_tune: bool = Field(
        False,
        description="Whisper backbones: train the whole pretrained model on the training recordings (teacher "
        "forcing on the transcripts as written) instead of using it zero-shot",
    )
    language: str | None = Field(
        None, description="Whisper: language code (en, zh, ...); null detects it (fine-tuning: null means en)"
    )
    whisper_beam_size: int = Field(
        1, ge=1, le=10, description="zero-shot Whisper: beam width of the first try at temperature 0 (1 = greedy)"
    )
    baseline: str | None = Field(
        "whisper-base",
        description="zero-shot Whisper scored as the strong baseline: whisper-base, whisper-tiny.en or null for none",
    )
    baseline_max_utterances: int = Field(200, ge=1, description="the baseline is scored on at most this many")

    @field_validator("language")
    @classmethod
    def _lower_case_language(cls, value: str | None) -> str | None:
        """Whisper's codes are lower case: EN means en."""
        return value.strip().lower() if value is not None else None

    @field_validator("speed_perturbation", "noise_snr_db")
    @classmethod
    def _low_to_high(cls, value: tuple[float, float] | None, info: ValidationInfo) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"{info.field_name}: give [low, high], got {list(value)}")
        if info.field_name == "speed_perturbation" and not 0.5 <= value[0] <= value[1] <= 2.0:
            raise ValueError(f"speed_perturbation: speeds between 0.5 and 2.0, got {list(value)}")
        return value

    @field_validator("cepstra")
    @classmethod
    def _cepstra_within_bands(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        bands = info.data.get("n_mels", 64)
        if isinstance(value, int) and not 4 <= value <= bands:
            raise ValueError(f"cepstra: 4 to n_mels ({bands}) coefficients, 'auto' or null, got {value}")
        return value


def _silence_wav() -> str:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(8000, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _band_limit(train: pd.DataFrame) -> float:
    """The highest frequency every training recording has (half the lowest sample rate, at most Whisper's 8 kHz):
    bands above it are dropped, so recordings of a higher rate look like the training data."""
    return min(8000.0, float(train["source_rate"].min()) / 2)


def _fit_whisper_window(train: pd.DataFrame, slowest: float) -> tuple[pd.DataFrame, str | None]:
    """Training on Whisper's encoder: recordings longer than its 30 s window once slowed down to the slowest
    training speed would lose the end of their transcript, so they are left out, and named."""
    limit = 30.0 * slowest
    long = train["seconds"] > limit
    if not long.any():
        return train, None
    first = train.loc[long, "file"].iloc[0]
    count = int(long.sum())
    warning = f"{count} training recordings over {limit:.1f} s left out, past Whisper's window (first: {first})"
    return train[~long].reset_index(drop=True), warning


FROM_SCRATCH_ONLY = frozenset({"n_mels", "cepstra", "subsampling", "vtlp", "speed_perturbation", "noise_snr_db"})


def _check_encoder(options: SpeechModelConfig) -> None:
    """A known, installed Whisper encoder, and none of the log-mel front end's options beside it."""
    from modelyard.models.whisper_ct2 import check_installed

    if options.encoder not in WHISPER_NAMES:
        raise ModelNotFoundError(
            f"unknown model.encoder '{options.encoder}'", f"use a bundled Whisper model: {', '.join(WHISPER_NAMES)}"
        )
    check_installed(options.encoder)
    fields = type(options).model_fields
    unused = sorted(f for f in FROM_SCRATCH_ONLY if getattr(options, f) != fields[f].default)  # saved configs hold all
    if unused:
        raise ConfigError(
            f"model.{unused[0]} is not used with model.encoder: the frozen encoder's features are computed once "
            "from each recording as it is (training augments them with time masks)",
            f"remove model.{', model.'.join(unused)}, or model.encoder",
        )


def _check_language(name: str, language: str | None) -> None:
    """model.language is one `name` transcribes (faster-whisper would fail on it only after training)."""
    from modelyard.models.whisper_ct2 import check_language

    if language is not None:
        try:
            check_language(name, language)
        except ValueError as err:
            raise ConfigError(f"model.language: {err}") from None


def _check_baseline(options: SpeechModelConfig) -> None:
    """model.baseline is a bundled Whisper model (or null) whose language is known: a baseline that fails after
    training is only a note in metrics.json, so the mistakes it can catch are caught here."""
    if options.baseline is None:
        return
    if options.baseline not in WHISPER_NAMES:
        raise ConfigError(
            f"unknown model.baseline '{options.baseline}' for speech_recognition",
            f"use a bundled Whisper model: {', '.join(WHISPER_NAMES)}; or null for no baseline",
        )
    if options.baseline != options.backbone or options.fine_tune:
        _check_language(options.baseline, options.language)


def check_backbone(options: SpeechModelConfig) -> None:
    """An unknown backbone or baseline, a Whisper model whose package is missing, fine-tuning asked of a model
    trained from scratch or a language Whisper does not know: a clear error before any work."""
    _check_baseline(options)
    if options.backbone not in (CTC, *WHISPER_NAMES):
        raise ModelNotFoundError(
            f"unknown backbone '{options.backbone}' for speech_recognition",
            f"use {CTC} (trained here) or a bundled Whisper model: {', '.join(WHISPER_NAMES)}",
        )
    from modelyard.models.whisper_ct2 import check_installed

    if options.backbone == CTC:
        if options.fine_tune:
            raise ConfigError(
                f"model.fine_tune is for the pretrained Whisper backbones; {CTC} is trained from scratch",
                "remove model.fine_tune, or choose whisper-base or whisper-tiny.en",
            )
        if options.encoder is not None:
            _check_encoder(options)
        return
    if options.encoder is not None:
        raise ConfigError(
            f"model.encoder is a front end for {CTC}; {options.backbone} has its own encoder",
            f"remove model.encoder, or set model.backbone: {CTC}",
        )

    check_installed(options.backbone)
    _check_language(options.backbone, options.language)


def _check_test_speakers(data: SpeechDataConfig, files: dict[str, pd.DataFrame]) -> None:
    """data.test_speakers holds those voices out whatever data.split.test says; beside a given test file it would
    be a second test set (the given one replaces it, and its voices would be in no split at all)."""
    if not data.test_speakers:
        return
    if "test" in files:
        raise ConfigError(
            "data.test_speakers and data.test both name the test data",
            "keep one: drop data.test_speakers to test on the given file, or drop data.test to hold out those voices",
        )
    if "speaker" not in files["train"].columns:
        raise DataError("data.test_speakers needs speakers", "set data.speaker_column (a LibriSpeech folder has them)")


@register_task("speech_recognition")
class SpeechRecognitionTask:
    DataConfig: ClassVar = SpeechDataConfig
    ModelConfig: ClassVar = SpeechModelConfig
    Input: ClassVar = AudioInput
    main_metric: ClassVar = "wer"
    validation_metrics: ClassVar = ("wer", "cer", "sentence_error_rate")  # speech_metrics (rtf is speed)
    greater_is_better: ClassVar = False
    transcribes_audio: ClassVar = True  # the server adds POST /v1/audio/transcriptions

    @property
    def example_input(self) -> str:
        """Half a second of silence as WAV, base64: the server's warm-up request."""
        return _silence_wav()

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        from modelyard.data.audio import AudioReport, speaker_splits
        from modelyard.data.splits import fingerprint, make_splits
        from modelyard.data.transcripts import duration_summary, read_transcribed, vocabulary_report
        from modelyard.models.ctc_decoder import clean_transcript

        data: SpeechDataConfig = config.data
        check_backbone(config.model)  # what `train` would reject, `validate` rejects first
        audio_report, warnings, files = AudioReport(), [], {}
        for which in ("train", "validation", "test"):
            path = getattr(data, which)
            if path:
                files[which], found = read_transcribed(
                    path,
                    data.audio_column,
                    data.text_column,
                    data.speaker_column,
                    data.format,
                    data.max_rows,
                    data.max_seconds if which == "train" else 3 * 3600.0,
                    audio_report,
                )
                warnings += found
        train = files["train"]
        if train.empty:
            raise DataError(f"{data.train}: no usable recordings ({audio_report.as_dict()['skipped']} skipped)")
        _check_test_speakers(data, files)
        carved = [w for w in ("validation", "test") if w not in files and getattr(data.split, w) > 0]
        carve_by_speaker = "speaker" in train.columns and (bool(carved) or bool(data.test_speakers))
        if carve_by_speaker:
            given = {k: v for k, v in files.items() if k != "train"}
            split = data.split.model_copy(update={w: 0.0 for w in given})
            by_recording = (
                "a CSV/JSONL manifest (a LibriSpeech folder names its speakers)"
                if Path(data.train).is_dir()
                else "data.speaker_column: null"
            )
            splits, notes = speaker_splits(train, split, data.test_speakers, by_recording)
            splits.update(given)
        else:
            plain = data.split.model_copy(update={"stratify": False})
            splits, notes = make_splits(train, files.get("validation"), files.get("test"), plain, None)
        if config.model.fine_tune and config.model.backbone in WHISPER_NAMES:
            splits["train"], warning = _fit_whisper_window(splits["train"], config.model.speed_perturbation[0])
            warnings += [warning] if warning else []
        elif config.model.encoder:
            splits["train"], warning = _fit_whisper_window(splits["train"], 1.0)
            warnings += [warning] if warning else []
        if audio_report.skipped:
            first = audio_report.skipped_files[0]
            warnings.append(f"{sum(audio_report.skipped.values())} audio files skipped (first: {first})")
        report = {
            "audio": audio_report.as_dict(),
            "splits": {n: len(f) for n, f in splits.items()},
            "split_notes": notes,
            "durations": {n: duration_summary(f["seconds"]) for n, f in splits.items()},
            "speakers": {n: sorted(f["speaker"].astype(str).unique().tolist()) for n, f in splits.items()}
            if "speaker" in train.columns
            else None,
            "vocabulary": vocabulary_report(splits, list(config.model.lexicon), clean_transcript),
        }
        prints = {n: fingerprint(f, ["file", "text", "sha256"]) for n, f in splits.items()}
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    def build(self, config: Config, data: PreparedData):
        options: SpeechModelConfig = config.model
        check_backbone(options)
        if options.backbone == CTC:
            from modelyard.learners.speech_ctc import CTCSpeechLearner

            texts = data.splits["train"]["text"].tolist()
            max_hz = _band_limit(data.splits["train"])
            lowest = int(data.splits["train"]["source_rate"].min())
            learner = CTCSpeechLearner.scratch(options, texts, max_hz)
            if options.encoder:
                data.report["backbone"] = (
                    f"{CTC}: BiLSTM + CTC over characters trained on this data, on the frozen pretrained encoder of "
                    f"{options.encoder} (bands above {max_hz:.0f} Hz dropped: the lowest training sample rate is "
                    f"{lowest} Hz)"
                )
            else:
                kept = learner.settings["model"]["cepstra"]
                features = f"{kept} cepstral coefficients of " if kept else ""
                data.report["backbone"] = (
                    f"{CTC}: BiLSTM + CTC over characters, trained from scratch on this data ({features}"
                    f"{options.n_mels} mel bands up to {max_hz:.0f} Hz: the lowest training sample rate is {lowest} Hz)"
                )
            return learner
        if options.fine_tune:
            from modelyard.learners.whisper_finetune import WhisperFineTuneLearner

            train = data.splits["train"]
            max_hz = _band_limit(train)
            data.report["backbone"] = (
                f"{options.backbone}: pretrained Whisper rebuilt in PyTorch from its package's CTranslate2 weights, "
                f"fine-tuned on this data (inputs of up to {train['seconds'].max():.1f} s; bands above "
                f"{max_hz:.0f} Hz dropped: the lowest training sample rate is {int(train['source_rate'].min())} Hz)"
            )
            return WhisperFineTuneLearner.pretrained(options, float(train["seconds"].max()), max_hz)
        from modelyard.learners.whisper import WhisperLearner

        data.report["backbone"] = (
            f"{options.backbone}: pretrained Whisper, zero-shot (`model.fine_tune: true` trains it on your recordings)"
        )
        return WhisperLearner(options.backbone, options.language, options.whisper_beam_size)

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        """The zero-shot Whisper model on (at most `baseline_max_utterances` of) validation and test."""
        options: SpeechModelConfig = config.model
        if not options.baseline or (options.baseline == options.backbone and not options.fine_tune):
            return {}
        from modelyard.learners.whisper import WhisperLearner

        cap = options.baseline_max_utterances
        try:
            learner = WhisperLearner(options.baseline, options.language, options.whisper_beam_size)
            scored = {n: learner.evaluate(data.splits[n].head(cap)) for n in ("validation", "test")}
        except ModelNotFoundError as err:
            return {options.baseline: {"error": err.message}}
        except Exception as err:  # runs after training: a failed baseline must not lose the model
            return {options.baseline: {"error": f"the baseline failed: {type(err).__name__}: {err}"}}
        return {options.baseline: {**scored, "note": f"zero-shot, first {cap} utterances of each split"}}

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[str]:
        """`predict --input`: the recordings a manifest names in `data.audio_column`, not its transcripts."""
        from modelyard.data.audio import listed_paths

        return listed_paths(frame, config.data.audio_column)

    def feedback_label(self, config: Config, label: Any) -> Any:
        """Feedback is a true label, scored right or wrong; a corrected transcript is neither scored by `monitor`
        nor learnt by `retrain`, so it is refused where it arrives (`/v1/feedback`: 422, `feedback import`)."""
        raise DataError(
            "this model's answers are transcripts, not labels, so feedback cannot score them",
            "add the corrected recordings and transcripts to the training manifest and train a new version, or "
            "score the model on them with `modelyard evaluate BUNDLE --data MANIFEST`",
        )

    def load(self, directory: Path, manifest: dict[str, Any], config: Config):
        if (directory / "whisper_finetuned.json").is_file():
            from modelyard.learners.whisper_finetune import WhisperFineTuneLearner

            return WhisperFineTuneLearner.load(directory)
        if manifest["backbone"] in WHISPER_NAMES:
            from modelyard.learners.whisper import WhisperLearner

            return WhisperLearner.load(directory, json.loads((directory / "whisper.json").read_text("utf-8")))
        from modelyard.learners.speech_ctc import CTCSpeechLearner, OnnxCTCSpeechLearner

        runtime = OnnxCTCSpeechLearner if manifest.get("runtime") == "onnxruntime" else CTCSpeechLearner
        return runtime.load(directory)
