"""What every speech recogniser shares: turning any input (path, bytes, base64, samples) into 16 kHz samples,
cutting long recordings into voice-activity chunks, timing for the real-time factor, and the per-utterance
transcripts the report and the export parity check compare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard import cancellation
from modelyard.data.audio import SAMPLE_RATE, AudioError, audio_stats, payload_seconds, read_audio
from modelyard.data.payloads import payload_bytes
from modelyard.drift import features as input_features
from modelyard.errors import DataError
from modelyard.metrics.speech import speech_metrics

MAX_AUDIO_SECONDS = 3 * 3600.0  # longer files are refused with a clear message, not read into memory
MAX_REQUEST_SECONDS = 1800.0  # the server's limit per upload: a request must finish within its timeout
PROFILE_ROWS = 256  # recordings profiled for the drift reference


@dataclass
class Utterance:
    """One recording with per-request hints (the OpenAI route's `language` and `prompt`); `audio` is anything
    `to_samples` reads, and samples once parsed."""

    audio: Any
    hints: dict[str, str] = field(default_factory=dict)


def to_samples(item: Any, max_seconds: float = MAX_AUDIO_SECONDS, paths: bool = True) -> np.ndarray:
    """A path (only when `paths`: never for what a client sends), raw bytes, a base64 string (or data: URL) or
    samples -> 16 kHz mono float32; AudioError (a ValueError whose message starts with the reason) otherwise."""
    if isinstance(item, Utterance):
        return to_samples(item.audio, max_seconds, paths)
    if isinstance(item, np.ndarray):
        if item.ndim != 1 or not np.issubdtype(item.dtype, np.floating):
            raise AudioError("unsupported: samples must be a 1-D float array at 16 kHz")
        return item.astype(np.float32, copy=False)
    if paths and (isinstance(item, Path) or (isinstance(item, str) and len(item) < 4096 and Path(item).is_file())):
        return read_audio(Path(item), max_seconds)[0]
    try:
        data = payload_bytes(item, "audio")
    except ValueError as err:
        raise AudioError(f"unsupported: {err} (or an audio file path)") from None
    return read_audio(data, max_seconds)[0]


def chunk_ranges(samples: np.ndarray, max_seconds: float) -> list[tuple[int, int]]:
    """Ranges to transcribe: the whole input when short, else voice-activity chunks of at most `max_seconds`
    (cut in pauses); silence-only input gives no range."""
    from modelyard.models.audio_features import chunks

    if samples.size <= max_seconds * SAMPLE_RATE:
        return [(0, samples.size)] if samples.size else []
    return chunks(samples, max_seconds)


class Transcriber:
    """Mixin for speech learners: `transcribe(list of samples) -> list of text` is all a learner implements."""

    task_kind = "speech"
    export_kind = "transcripts"
    max_chunk_seconds = 30.0
    max_seconds = MAX_AUDIO_SECONDS
    chunks_per_call = 8  # VAD chunks decoded together; an abandoned request stops between calls

    def transcribe(self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None) -> list[str]:
        """Text of each (at most `max_chunk_seconds` long) recording; `hints` (language, prompt) where used."""
        raise NotImplementedError  # pragma: no cover - each learner has its own

    def transcribe_detected(
        self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None
    ) -> list[tuple[str, str | None]]:
        """Each recording's text and the language it was decoded as: None for models without one (CTC); Whisper
        learners say which language they detected or were told."""
        return [(text, None) for text in self.transcribe(batch, hints)]

    def language_hint(self, language: str) -> str:
        """A request's `language` as `transcribe` takes it; ValueError (HTTP 422) for one the model cannot use.
        Learners that decode without a language hint (CTC) take any real code, lower case as Whisper's are: the
        codes Whisper's tokenizer lists (ISO-639-1), so `xx` is refused here as it is by a Whisper model."""
        from modelyard.models.whisper_ct2 import languages

        code = language.strip().lower()
        if code not in languages("whisper-base"):
            raise ValueError(f"{language!r} is not a language code; use an ISO-639-1 code such as en or zh")
        return code

    def parse_input(self, item: Any) -> np.ndarray | Utterance:
        """A request's audio -> samples (an Utterance keeps its hints); ValueError (HTTP 422) when unusable."""
        if isinstance(item, Utterance):
            return Utterance(to_samples(item.audio, MAX_REQUEST_SECONDS, paths=False), item.hints)
        return to_samples(item, MAX_REQUEST_SECONDS, paths=False)

    def input_seconds(self, item: Any) -> float:
        """A request's recording length from its header, before the server decodes it."""
        return payload_seconds(item.audio if isinstance(item, Utterance) else item)

    def to_audio(self, item: Any) -> np.ndarray:
        """Python API / CLI inputs -> samples; DataError naming the reason when unusable."""
        try:
            return to_samples(item)
        except AudioError as err:
            raise DataError(f"cannot transcribe this input: {err}") from None

    def describe_input(self, item: Any) -> dict[str, float]:
        """What the prediction log keeps instead of the recording (voices are personal data): a few numbers."""
        return audio_stats(to_samples(item, paths=False))

    def reference_profile(self, splits: dict[str, Any]) -> dict[str, Any]:
        """Drift reference: bins of each `audio_stats` number over up to PROFILE_ROWS held-out-first recordings."""
        import pandas as pd

        frames = [splits[n] for n in ("validation", "test", "train") if n in splits and len(splits[n])]
        sample = pd.concat(frames).head(PROFILE_ROWS) if frames else pd.DataFrame({"path": []})
        rows = [audio_stats(read_audio(Path(p))[0]) for p in sample["path"]]
        features = input_features.feature_bins(rows, ("duration", "loudness", "snr", "silence_share"))
        return {"features": features, "feature_rows": len(rows)}

    def feature_drift(self, profile: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """PSI per logged audio number against the reference bins."""
        return input_features.feature_drift(profile, rows)

    def transcribe_long(
        self, samples: list[np.ndarray], hints: list[dict[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        """Transcripts of recordings of any length: long ones in VAD chunks, with each chunk's time span. Between
        calls of `chunks_per_call` chunks, `cancellation.check()` stops the work of a request the server gave up on
        (timed out), so the model is free for the next one instead of finishing a recording nobody waits for."""
        pieces, owners = [], []
        for owner, audio in enumerate(samples):
            for start, end in chunk_ranges(audio, self.max_chunk_seconds):
                pieces.append((start, end))
                owners.append(owner)
        chunks = [samples[o][s:e] for o, (s, e) in zip(owners, pieces, strict=True)]
        chunk_hints = [hints[o] for o in owners] if hints else None
        decoded: list[tuple[str, str | None]] = []
        for first in range(0, len(chunks), self.chunks_per_call):
            cancellation.check()
            part = slice(first, first + self.chunks_per_call)
            decoded += self.transcribe_detected(chunks[part], chunk_hints[part] if chunk_hints else None)
        out: list[dict[str, Any]] = [
            {"text": "", "duration": round(a.size / SAMPLE_RATE, 3), "segments": []} for a in samples
        ]
        for owner, (start, end), (text, language) in zip(owners, pieces, decoded, strict=True):
            segment = {"start": round(start / SAMPLE_RATE, 3), "end": round(end / SAMPLE_RATE, 3), "text": text}
            out[owner]["segments"].append(segment)
            if language is not None:  # the first chunk's, as Whisper detects from a recording's first 30 s
                out[owner].setdefault("language", language)
        for answer in out:
            answer["text"] = " ".join(s["text"] for s in answer["segments"] if s["text"]).strip()
        return out

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        hints = [x.hints if isinstance(x, Utterance) else {} for x in inputs]
        return self.transcribe_long([self.to_audio(x) for x in inputs], hints)

    def transcripts(self, data: Any) -> tuple[list[str], list[str], float, float]:
        """(references, hypotheses, audio seconds, compute seconds) over a split's rows. The last split's are
        kept, so the test intervals and the report reuse the test evaluation instead of transcribing again."""
        key = (id(self.module), tuple(data["path"]), tuple(data["text"]))
        last = getattr(self, "_last_transcripts", None)
        if last is not None and last[0] == key and not getattr(self.module, "training", False):
            return last[1]
        samples = [read_audio(Path(p))[0] for p in data["path"]]
        started = time.perf_counter()
        hypotheses = [a["text"] for a in self.transcribe_long(samples)]
        seconds = time.perf_counter() - started
        result = (list(data["text"]), hypotheses, sum(a.size for a in samples) / SAMPLE_RATE, seconds)
        self._last_transcripts = (key, result)
        return result

    def evaluate(self, data: Any) -> dict[str, Any]:
        if not len(data):
            return {}
        references, hypotheses, audio, compute = self.transcripts(data)
        speakers = data["speaker"].tolist() if "speaker" in data.columns else None
        return speech_metrics(references, hypotheses, audio, compute, speakers)

    def export_examples(self, data: Any) -> tuple[list[str], np.ndarray]:
        return list(data["path"]), np.asarray(list(data["text"]), dtype=object)

    def export_outputs(self, inputs: list[Any]) -> np.ndarray:
        return np.asarray([a["text"] for a in self.predict(inputs)], dtype=object)
