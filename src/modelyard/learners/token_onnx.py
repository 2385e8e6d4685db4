"""The entity extractor served from its exported ONNX graph: same tokenizer, word split, tags and span decoding,
ONNX Runtime instead of PyTorch for the tag logits."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.fsutil import atomic_write_json
from modelyard.learners.token_tagger import SPEC_FILE, TokenTaggerLearner, _backend
from modelyard.runtimes.protocol import ONNX_FILE


class OnnxTokenTaggerLearner(TokenTaggerLearner):
    """`TokenTaggerLearner` whose tag probabilities come from an ONNX Runtime session."""

    explainable = False  # integrated gradients need the PyTorch module

    def __init__(self, session_path: Path, backend: Any, spec: dict[str, Any]) -> None:
        from modelyard.runtimes.onnx_session import onnx_session

        super().__init__(None, backend, spec)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> OnnxTokenTaggerLearner:
        tokenizer_json = (directory / "tokenizer" / "tokenizer.json").read_text(encoding="utf-8")
        return cls(directory / ONNX_FILE, _backend(tokenizer_json, spec["max_length"]), spec)

    def tag_probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        logits = self.session.run(["logits"], feeds)[0].astype(np.float32)  # (B, T, tags)
        return torch.softmax(torch.from_numpy(logits), -1).numpy()

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        (directory / "tokenizer").mkdir(exist_ok=True)
        self.backend.save(str(directory / "tokenizer" / "tokenizer.json"))
        atomic_write_json(directory / SPEC_FILE, self.spec)
        return {"labels": self.labels}
