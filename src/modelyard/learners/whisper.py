"""The pretrained transcriber: a bundled Whisper model used zero-shot (nothing is trained; `fit` only records
the language). Its bundle holds no weights, only which package files it needs and their sha256 sums, checked again
when it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.fsutil import atomic_write_json
from modelyard.learners.speech_common import Transcriber
from modelyard.models.whisper_ct2 import WHISPER, check_language, checksums, load_whisper

# Whisper's own decoding, as OpenAI's API does it: temperature 0, and on a transcript that looks repetitive or
# unsure (compression ratio, log-probability) a retry sampling at 0.2 .. 1.0. The retry is not repeatable, so such
# a recording may get another text on another call; decoding at 0 only is, but greedy loops ("8, 8, 8, ...") then
# stay: on 200 held-out digit strings whisper-base's WER went from 15.9% to 46.1% (beam 5 at 0 only: no better).
TEMPERATURE = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class WhisperLearner(Transcriber):
    """`module = None`: the shared loop calls `fit`, which has nothing to learn."""

    max_batch_size = 1  # recordings are transcribed one by one: a server batch would only delay the first answers
    chunks_per_call = 1  # each 30 s chunk takes seconds on a CPU: an abandoned request stops after the current one

    def __init__(self, backbone: str, language: str | None, beam_size: int, prompt: str | None = None) -> None:
        self.module = None
        self.backbone = backbone
        self.language = language
        self.beam_size = beam_size
        self.prompt = prompt
        self.precision = "int8"
        self._model: Any = None

    @property
    def model(self) -> Any:
        """faster-whisper's model, loaded (and its files checked) on first use."""
        if self._model is None:
            self._model = load_whisper(self.backbone, torch.get_num_threads())
        return self._model

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> WhisperLearner:
        learner = cls(spec["backbone"], spec.get("language"), spec.get("beam_size", 1), spec.get("prompt"))
        learner.model  # noqa: B018 - load and check the weights now, not in the first request
        return learner

    def train_defaults(self) -> dict[str, Any]:
        return {"epochs": 1}

    zero_shot = True  # `fit` learns nothing: train reports no steps and no throughput

    def fit(self, train: Any, validation: Any) -> None:
        """Zero-shot: the pretrained model is used as it is."""

    def language_hint(self, language: str) -> str:
        """A code this model knows, lower case: faster-whisper raises on any other, or (English-only models)
        transcribes it as English."""
        return check_language(self.backbone, language)

    def transcribe(self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None) -> list[str]:
        return [text for text, _ in self.transcribe_detected(batch, hints)]

    def transcribe_detected(
        self, batch: list[np.ndarray], hints: list[dict[str, str]] | None = None
    ) -> list[tuple[str, str | None]]:
        """Text and language of each recording: the one asked for, else the one faster-whisper detected."""
        out = []
        for samples, hint in zip(batch, hints or [{}] * len(batch), strict=True):
            segments, info = self.model.transcribe(
                samples,
                language=hint.get("language") or self.language,
                beam_size=self.beam_size,
                temperature=TEMPERATURE,
                initial_prompt=hint.get("prompt") or self.prompt,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
            )
            out.append((" ".join(s.text.strip() for s in segments).strip(), info.language))
        return out

    def save(self, directory: Path) -> dict[str, Any]:
        spec = {"backbone": self.backbone, "language": self.language, "beam_size": self.beam_size}
        atomic_write_json(directory / "whisper.json", {**spec, "prompt": self.prompt})
        return {"weights": checksums(self.backbone), "weights_licence": WHISPER[self.backbone].licence}
