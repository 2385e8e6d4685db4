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

# faster-whisper's default is a fallback list (0.0 .. 1.0) that samples again whenever a transcript looks
# repetitive or unsure: the same recording then gets a different text on each call, and metrics.json, evaluate
# and the report disagree. One temperature of 0 decodes greedily (or by beam search): the same text every time.
TEMPERATURE = 0.0


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
