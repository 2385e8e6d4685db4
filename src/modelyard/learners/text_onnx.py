"""The text classifier served from its exported ONNX graph: same tokenizer, labels and decoding, ONNX Runtime
instead of PyTorch."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from modelyard.fsutil import atomic_write_json
from modelyard.learners.text import TextClassifierLearner
from modelyard.learners.text_inputs import SavedTokenizer, saved_tokenizer
from modelyard.runtimes.protocol import ONNX_FILE

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class OnnxTextClassifierLearner(TextClassifierLearner):
    """The same classifier (tokenizer, labels, decoding) answering through an ONNX Runtime session."""

    def __init__(
        self,
        session_path: Path,
        tokenizer: PreTrainedTokenizerBase | SavedTokenizer,
        labels: list[str],
        spec: dict[str, Any],
        options: Any,
    ) -> None:
        from modelyard.runtimes.onnx_session import onnx_session

        super().__init__(None, tokenizer, labels, spec, options)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str], spec: dict[str, Any]):
        tokenizer = saved_tokenizer(directory / "tokenizer", spec["max_length"])
        return cls(directory / ONNX_FILE, tokenizer, labels, spec, options)

    def _run_batch(self, batch: dict[str, torch.Tensor], fn: str) -> np.ndarray:
        feeds = {name: batch[name].numpy() for name in ("input_ids", "attention_mask")}
        return self.session.run(["logits" if fn == "forward" else "embedding"], feeds)[0].astype(np.float32)

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        atomic_write_json(directory / "text_model.json", self.spec)
        return {"labels": self.labels}
