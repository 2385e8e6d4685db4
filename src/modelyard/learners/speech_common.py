"""What every speech recogniser shares: turning any input (path, bytes, base64, samples) into 16 kHz samples,
cutting long recordings into voice-activity chunks, timing for the real-time factor, and the per-utterance
transcripts the report and the export parity check compare.
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.data.audio import SAMPLE_RATE, AudioError, read_audio
from modelyard.errors import DataError
from modelyard.metrics.speech import speech_metrics

MAX_AUDIO_SECONDS = 3 * 3600.0  # longer inputs are refused with a clear message, not read into memory


def to_samples(item: Any, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """A path, raw bytes, a base64 string (or data: URL) or samples -> 16 kHz mono float32; AudioError
    (a ValueError whose message starts with the reason) when it is not usable audio."""
    if isinstance(item, np.ndarray):
        if item.ndim != 1 or not np.issubdtype(item.dtype, np.floating):
            raise AudioError("unsupported: samples must be a 1-D float array at 16 kHz")
        return item.astype(np.float32, copy=False)
    if isinstance(item, Path) or (isinstance(item, str) and len(item) < 4096 and Path(item).is_file()):
        return read_audio(Path(item), max_seconds)[0]
    if isinstance(item, str):
        text = item.strip()
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:
            item = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise AudioError("unsupported: neither an audio file path nor base64-encoded audio") from None
    if isinstance(item, bytes | bytearray):
        return read_audio(bytes(item), max_seconds)[0]
    raise AudioError(f"unsupported: expected audio (path, bytes or base64), got {type(item).__name__}")


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

    def transcribe(self, batch: list[np.ndarray]) -> list[str]:  # pragma: no cover - each learner has its own
        raise NotImplementedError

    def parse_input(self, item: Any) -> np.ndarray:
        """A request's audio -> samples; ValueError (HTTP 422) naming the reason when unusable."""
        return to_samples(item)

    def transcribe_long(self, samples: list[np.ndarray]) -> list[dict[str, Any]]:
        """Transcripts of recordings of any length: long ones in VAD chunks, with each chunk's time span."""
        pieces, owners = [], []
        for owner, audio in enumerate(samples):
            for start, end in chunk_ranges(audio, self.max_chunk_seconds):
                pieces.append((start, end))
                owners.append(owner)
        texts = self.transcribe([samples[o][s:e] for o, (s, e) in zip(owners, pieces, strict=True)]) if pieces else []
        out: list[dict[str, Any]] = [
            {"text": "", "duration": round(a.size / SAMPLE_RATE, 3), "segments": []} for a in samples
        ]
        for owner, (start, end), text in zip(owners, pieces, texts, strict=True):
            segment = {"start": round(start / SAMPLE_RATE, 3), "end": round(end / SAMPLE_RATE, 3), "text": text}
            out[owner]["segments"].append(segment)
        for answer in out:
            answer["text"] = " ".join(s["text"] for s in answer["segments"] if s["text"]).strip()
        return out

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        try:
            samples = [to_samples(x) for x in inputs]
        except AudioError as err:
            raise DataError(f"cannot transcribe this input: {err}") from None
        return self.transcribe_long(samples)

    def transcripts(self, data: Any) -> tuple[list[str], list[str], float, float]:
        """(references, hypotheses, audio seconds, compute seconds) over a split's rows."""
        samples = [read_audio(Path(p))[0] for p in data["path"]]
        started = time.perf_counter()
        hypotheses = [a["text"] for a in self.transcribe_long(samples)]
        seconds = time.perf_counter() - started
        return list(data["text"]), hypotheses, sum(a.size for a in samples) / SAMPLE_RATE, seconds

    def evaluate(self, data: Any) -> dict[str, Any]:
        if not len(data):
            return {}
        references, hypotheses, audio, compute = self.transcripts(data)
        return speech_metrics(references, hypotheses, audio, compute)

    def export_examples(self, data: Any) -> tuple[list[str], np.ndarray]:
        return list(data["path"]), np.asarray(list(data["text"]), dtype=object)

    def export_outputs(self, inputs: list[Any]) -> np.ndarray:
        return np.asarray([a["text"] for a in self.predict(inputs)], dtype=object)
