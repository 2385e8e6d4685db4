"""The multi-label text learner: the text classifier's tokenizer and encoder with one sigmoid per label, trained
with binary cross-entropy by the shared loop, deciding with per-label thresholds tuned on the validation split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from modelyard.fsutil import atomic_write_json
from modelyard.learners.text import TextClassifierLearner
from modelyard.learners.text_inputs import TextDataset
from modelyard.learners.text_onnx import OnnxTextClassifierLearner
from modelyard.metrics.multilabel import decide, label_matrix, multilabel_metrics, set_answers, tune_thresholds

if TYPE_CHECKING:
    import pandas as pd

DECISION_FILE = "thresholds.json"


@dataclass
class Decision:
    """How scores become a label set: a threshold per label (saved in the bundle as thresholds.json), whether
    an empty answer is replaced by the best label, and the separator that joins a set into one `label` string."""

    labels: list[str]
    thresholds: np.ndarray
    at_least_one: bool = True
    separator: str = "|"
    tuning: dict[str, Any] = field(default_factory=lambda: {"method": "none: 0.5 for every label"})

    @classmethod
    def default(cls, labels: list[str], at_least_one: bool, separator: str) -> Decision:
        return cls(labels, np.full(len(labels), 0.5, dtype=np.float32), at_least_one, separator)

    def tune(self, y: np.ndarray, scores: np.ndarray) -> None:
        """Per-label thresholds maximising F1 on these (validation) scores."""
        self.thresholds, info = tune_thresholds(y, scores)
        self.tuning = {"method": "per-label F1 on the validation split", "rows": len(y), **info}

    def choose(self, scores: np.ndarray) -> np.ndarray:
        """The 0/1 label matrix these scores give."""
        return decide(scores, self.thresholds, self.at_least_one)

    def score(self, y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        return multilabel_metrics(y, self.choose(scores), self.labels)

    def answers(self, scores: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        return set_answers(scores, self.thresholds, self.labels, top_k, self.at_least_one, self.separator)

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": {label: round(float(t), 4) for label, t in zip(self.labels, self.thresholds, strict=True)},
            "at_least_one": self.at_least_one,
            "separator": self.separator,
            "tuning": self.tuning,
        }

    def save(self, directory: Path) -> None:
        atomic_write_json(directory / DECISION_FILE, self.as_dict())

    @classmethod
    def load(cls, directory: Path, labels: list[str]) -> Decision:
        raw = json.loads((directory / DECISION_FILE).read_text(encoding="utf-8"))
        thresholds = np.array([raw["thresholds"][label] for label in labels], dtype=np.float32)
        return cls(labels, thresholds, raw["at_least_one"], raw["separator"], raw.get("tuning", {}))


class MultiLabelTextLearner(TextClassifierLearner):
    """`TextClassifierLearner` with label sets: multi-hot targets, BCE, sigmoid scores, thresholded answers.

    While training, every validation pass tunes the thresholds on its own scores (so early stopping compares
    epochs at their best decision); `finish_training` tunes them once more on the restored best weights and
    freezes them, so test and later data are scored with thresholds that never saw them."""

    decision: Decision
    tuning_split: pd.DataFrame | None = None  # the validation split, set by the task while training
    tune_each_evaluation = False

    def prepare_decision(self, decision: Decision, validation: pd.DataFrame | None) -> None:
        self.decision = decision
        self.tuning_split = validation if validation is not None and len(validation) else None
        self.tune_each_evaluation = self.tuning_split is not None

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str], spec: dict[str, Any]):
        learner = super().load(directory, options, labels, spec)
        learner.decision = Decision.load(directory, labels)
        return learner

    @staticmethod
    def activate(logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-logits))

    @property
    def probe_head(self) -> bool:
        return self.spec["kind"] == "hf" and self.options.head_init == "linear_probe"

    @torch.no_grad()
    def start_head_from_probe(self, train: pd.DataFrame, precision: str) -> None:
        """LP-FT for label sets: one logistic regression per label on the frozen encoder's standardised pooled
        embeddings becomes the head, so the few steps a CPU budget allows start from working label scores."""
        from sklearn.linear_model import LogisticRegression

        self.precision = precision
        x = self.embed(train["text"].tolist()).astype(np.float64)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        z, y = (x - mean) / scale, self.targets(train)
        weight, bias = np.zeros((len(self.labels), x.shape[1])), np.zeros(len(self.labels))
        for j in range(len(self.labels)):
            share = y[:, j].mean()
            if 0 < share < 1:
                probe = LogisticRegression(C=0.1, solver="liblinear").fit(z, y[:, j])
                weight[j] = probe.coef_[0] / scale
                bias[j] = probe.intercept_[0] - weight[j] @ mean
            else:  # a label in every row or none: a constant score
                bias[j] = 5.0 if share else -5.0
        self.module.head.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        self.module.head.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

    def targets(self, data: pd.DataFrame) -> np.ndarray:
        return label_matrix(data["labels"].tolist(), self.labels)

    def dataset(self, data: pd.DataFrame, training: bool) -> TextDataset:
        y = self.targets(data).astype(np.float32)
        return TextDataset(self.encode(data["text"].tolist()), [row.tolist() for row in y])

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self._recompute_if_long(batch["input_ids"])
        logits = self.logits(batch).float()
        target = batch["labels"].float()
        smoothing = self.options.label_smoothing
        if smoothing:
            target = target * (1 - smoothing) + smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, target)

    def eval_outputs(self, data: pd.DataFrame, shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Rows and their sigmoid scores per label, from every shard[1]-th length-sorted batch."""
        ids = self.encode(data["text"].tolist())
        chunks = self._batches(ids)[shard[0] :: shard[1]]
        logits = [self._run_batch(self.collate([{"input_ids": ids[i]} for i in c]), "forward") for c in chunks]
        if not chunks:
            return np.zeros(0, dtype=np.int64), np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(chunks), self.activate(np.concatenate(logits))

    def eval_score(self, data: pd.DataFrame, outputs: np.ndarray) -> dict[str, Any]:
        y = self.targets(data)
        if self.tune_each_evaluation:
            self.decision.tune(y, outputs)
        return self.decision.score(y, outputs)

    def finish_training(self) -> bool:
        """Tune the thresholds on the best weights' validation scores and keep them; True: validate again."""
        self.tune_each_evaluation = False
        if self.tuning_split is None:
            return False
        self.decision.tune(self.targets(self.tuning_split), self.predict_proba(self.tuning_split["text"].tolist()))
        return True

    def predict(self, inputs: list[str], top_k: int = 1) -> list[dict[str, Any]]:
        return self.decision.answers(self.predict_proba([str(x) for x in inputs]), top_k)

    def save(self, directory: Path) -> dict[str, Any]:
        extras = super().save(directory)
        self.decision.save(directory)
        return extras

    export_kind = "label_sets"  # the parity check compares label sets at these thresholds

    def decide(self, scores: np.ndarray) -> np.ndarray:
        return self.decision.choose(scores)

    def export_examples(self, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        return data["text"].tolist(), self.targets(data)

    def export_outputs(self, inputs: list[str]) -> np.ndarray:
        return self.predict_proba(inputs)


class OnnxMultiLabelTextLearner(MultiLabelTextLearner, OnnxTextClassifierLearner):
    """The same multi-label model answering through ONNX Runtime (the exported graph gives logits per label)."""
