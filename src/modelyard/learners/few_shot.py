"""Few-shot text classification (SetFit's method) and zero-shot classification from label texts, on the bundled
sentence encoders.

With a handful of examples per class, fine-tuning an encoder under a random head with cross-entropy has too few
rows to move it well. SetFit (Tunstall et al. 2022) instead fine-tunes the encoder contrastively on sentence pairs
(same class -> cosine 1, different classes -> 0; n examples give O(n^2) pairs), then fits logistic regression on
the tuned embeddings. Here the pairs train on the shared loop and the regression becomes the linear head of an
ordinary `EncoderClassifier`, so the bundle is a plain text-classifier bundle: predict, serve, evaluate, explain
and ONNX export work unchanged. Zero-shot needs no training: the head is the encoder's embeddings of the label
names (or descriptions), so the argmax is the most cosine-similar label.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.errors import ConfigError
from modelyard.learners import linear_probe
from modelyard.learners.text import TextClassifierLearner
from modelyard.learners.text_inputs import TextDataset

if TYPE_CHECKING:
    import pandas as pd

FEW_SHOT = "+few-shot"  # backbone suffixes: `minilm-l6+few-shot`, `multilingual-e5-small+zero-shot`
ZERO_SHOT = "+zero-shot"
FEW_SHOT_LIMIT = 30  # auto: below this many training examples per class (median), SetFit's regime, not tuned here
TARGET_PAIRS = 2000  # pair_iterations unset: enough iterations for about this many pairs ...
MAX_ITERATIONS = 20  # ... but no more than SetFit's default of 20 per example
# SetFit's defaults (body learning rate 2e-5, batch 16 pairs, one epoch over the pairs)
FEW_SHOT_DEFAULTS = {"epochs": 1, "batch_size": 16, "learning_rate": 2e-5, "scheduler": "linear", "warmup_ratio": 0.1}
ZERO_SHOT_SCALE = 20.0  # softmax temperature 1/20 over cosine similarities (as CLIP-style zero-shot heads use)


def split_method(backbone: str) -> tuple[str, str | None]:
    """`minilm-l6+few-shot` -> ("minilm-l6", "few-shot"); a backbone without a method suffix -> (backbone, None)."""
    for suffix in (FEW_SHOT, ZERO_SHOT):
        if backbone.endswith(suffix):
            return backbone[: -len(suffix)], suffix[1:]
    return backbone, None


def prefixes(encoder: str) -> tuple[str, str]:
    """(input prefix, label-text prefix): E5 models were trained with "query: " / "passage: " in front of texts and
    embed worse without them; other encoders take none."""
    return ("query: ", "passage: ") if "e5" in Path(encoder).name.lower() else ("", "")


def examples_per_class(labels: pd.Series) -> float:
    """The median number of training rows per class: one rare class does not make a large data set few-shot."""
    return float(labels.value_counts().median())


def choose(options: Any, train: pd.DataFrame) -> tuple[str, str]:
    """For `backbone: auto` once an encoder is chosen: (method suffix, why), from `model.zero_shot` and the number
    of training examples per class."""
    if options.zero_shot:
        return (
            ZERO_SHOT,
            "model.zero_shot: classifies by cosine similarity to the label names/descriptions, no training",
        )
    per_class = examples_per_class(train["label"])
    if per_class < FEW_SHOT_LIMIT:
        return FEW_SHOT, (
            f"{per_class:g} training examples per class (median) < {FEW_SHOT_LIMIT}: few-shot, contrastive "
            "sentence-pair fine-tuning of the encoder + a logistic-regression head (SetFit)"
        )
    return "", f"{per_class:g} training examples per class (median) >= {FEW_SHOT_LIMIT}: fine-tuning with a head"


def label_texts(labels: list[str], descriptions: dict[str, str] | None) -> list[str]:
    """What zero-shot embeds per label: its description, else its name with `_`/`-` read as spaces."""
    descriptions = descriptions or {}
    return [descriptions.get(label) or label.replace("_", " ").replace("-", " ") for label in labels]


def make_pairs(labels: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """(pairs, 3) rows of (i, j, same): each example is paired `iterations` times with a random other example of
    its class (same = 1) and once as often with one of another class (same = 0), so the two kinds are balanced."""
    rng = np.random.default_rng(seed)
    members = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    rows = []
    for _ in range(iterations):
        for i in rng.permutation(len(labels)):
            same = members[labels[i]]
            if len(same) > 1:
                j = i
                while j == i:
                    j = same[rng.integers(len(same))]
                rows.append((i, j, 1))
            other = rng.integers(len(labels))
            while labels[other] == labels[i]:
                other = rng.integers(len(labels))
            rows.append((i, other, 0))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def pair_iterations(options: Any, examples: int) -> int:
    if options.pair_iterations:
        return options.pair_iterations
    return max(1, min(MAX_ITERATIONS, math.ceil(TARGET_PAIRS / (2 * max(1, examples)))))


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, input_ids: list[list[int]], pairs: np.ndarray) -> None:
        self.input_ids = input_ids
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i, j, same = self.pairs[k]
        return {"a": self.input_ids[i], "b": self.input_ids[j], "same": float(same)}


def _pretrained(path: Path, backbone: str, options: Any, labels: list[str], texts: list[str]) -> dict[str, Any]:
    """The parts of a pretrained `TextClassifierLearner` whose inputs carry the encoder's prefix (saved in the
    spec, so every bundle reader adds it too)."""
    encoder, _ = split_method(backbone)
    prefix = prefixes(encoder)[0]
    base = TextClassifierLearner.pretrained(path, backbone, options, labels, [prefix + t for t in texts])
    spec = {**base.spec, "text_prefix": prefix}
    return {"module": base.module, "tokenizer": base.tokenizer, "labels": labels, "spec": spec, "options": options}


class FewShotTextLearner(TextClassifierLearner):
    """SetFit on the shared loop: trains on sentence pairs with a cosine-similarity loss on the mean-pooled
    embeddings (head and dropout set aside), then `finish_training` fits the logistic-regression head."""

    @classmethod
    def build(cls, path: Path, backbone: str, options: Any, train: pd.DataFrame, labels: list[str], seed: int):
        learner = cls(**_pretrained(path, backbone, options, labels, train["text"].tolist()))
        learner.spec["method"] = "few-shot"
        learner.seed = seed
        learner.module.head = nn.Identity()  # forward() is the pooled embedding until the head is fitted
        learner.module.dropout = nn.Identity()
        return learner

    def train_defaults(self) -> dict[str, Any]:
        return dict(FEW_SHOT_DEFAULTS)

    @property
    def head_fitted(self) -> bool:
        return isinstance(getattr(self.module, "module", self.module).head, nn.Linear)

    def dataset(self, data: pd.DataFrame, training: bool) -> TextDataset | PairDataset:
        if not training:
            return super().dataset(data, training)
        self.train_frame = data  # finish_training fits the head on these rows
        y = data["label"].map(self.label_index).to_numpy()
        pairs = make_pairs(y, pair_iterations(self.options, len(y)), self.seed)
        return PairDataset(self.encode(data["text"].tolist()), pairs)

    def lengths(self, dataset: TextDataset | PairDataset) -> list[int]:
        if isinstance(dataset, PairDataset):
            ids = dataset.input_ids
            return [max(len(ids[i]), len(ids[j])) for i, j, _ in dataset.pairs]
        return super().lengths(dataset)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "a" not in items[0]:
            return super().collate(items)
        batch = super().collate([{"input_ids": x["a"]} for x in items] + [{"input_ids": x["b"]} for x in items])
        batch["same"] = torch.tensor([x["same"] for x in items])  # rows [:B] pair with rows [B:]
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """SetFit's CosineSimilarityLoss: squared error between cos(a, b) and 1 (same class) or 0."""
        self._recompute_if_long(batch["input_ids"])
        embeddings = self.module(batch["input_ids"], batch["attention_mask"]).float()  # (2B, C): head set aside
        a, b = embeddings.chunk(2)
        return F.mse_loss(F.cosine_similarity(a, b), batch["same"].float())

    def _probe(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Logistic regression on the current encoder's embeddings of the training rows, as (weight, bias)."""
        x = self.embed(self.train_frame["text"].tolist())
        y = self.train_frame["label"].map(self.label_index).to_numpy()
        return linear_probe.linear_head(linear_probe.fit_probe(x, y))

    def eval_outputs(self, data: pd.DataFrame, shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """While the encoder trains, validation scores it as it would be served: with a head fitted to it now."""
        if self.head_fitted:
            return super().eval_outputs(data, shard)
        weight, bias = self._probe()
        ids = self.encode(data["text"].tolist())
        chunks = self._batches(ids)[shard[0] :: shard[1]]
        if not chunks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pooled = [self._run_batch(self.collate([{"input_ids": ids[i]} for i in c]), "embed") for c in chunks]
        logits = np.concatenate(pooled) @ weight.numpy().T + bias.numpy()
        return np.concatenate(chunks), logits.argmax(1)

    def finish_training(self) -> bool:
        """After the loop restores the best encoder weights: the logistic-regression head on them."""
        module = getattr(self.module, "module", self.module)
        weight, bias = self._probe()
        head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        module.head = head.to(next(module.parameters()).device)
        module.dropout = nn.Dropout(self.options.dropout)
        return True


class ZeroShotTextLearner(TextClassifierLearner):
    """No gradient steps: `module` stays None until the loop calls `fit`, which sets the head to the label texts'
    embeddings; from then on it is an ordinary pretrained text classifier."""

    @classmethod
    def build(cls, path: Path, backbone: str, options: Any, labels: list[str], descriptions: dict[str, str] | None):
        learner = cls(**_pretrained(path, backbone, options, labels, label_texts(labels, descriptions)))
        learner.spec["method"] = "zero-shot"
        learner.descriptions = descriptions
        learner.classifier, learner.module = learner.module, None
        return learner

    def train_defaults(self) -> dict[str, Any]:
        return {"epochs": 1, "batch_size": 1}  # nothing is optimised: no learning rate

    def fit(self, train: pd.DataFrame | None = None, validation: pd.DataFrame | None = None) -> None:
        """Head rows = unit-length label embeddings / their typical norm x ZERO_SHOT_SCALE: the argmax is exactly the
        most cosine-similar label (the input's own norm scales every logit alike); softmax makes probabilities."""
        self.module = self.classifier
        passage = prefixes(split_method(self.backbone)[0])[1]
        texts = [passage + t for t in label_texts(self.labels, self.descriptions)]
        ids = self.tokenizer(texts, truncation=True, max_length=self.spec["max_length"])["input_ids"]
        pooled = torch.from_numpy(self._run_batch(self.collate([{"input_ids": x} for x in ids]), "embed"))
        norms = pooled.norm(dim=1, keepdim=True).clamp(min=1e-6)
        with torch.no_grad():
            self.module.head.weight.copy_(pooled / norms * (ZERO_SHOT_SCALE / norms.mean()))
            self.module.head.bias.zero_()


def config_warnings(
    options: Any, descriptions: dict[str, str] | None, labels: list[str], pretrained: bool
) -> list[str]:
    """What `validate` says about the zero-shot settings; zero-shot without a pretrained encoder is refused."""
    if options.zero_shot and not pretrained:
        raise ConfigError(
            f"model.zero_shot needs a pretrained text encoder, not backbone '{options.backbone}'",
            "use backbone: auto, minilm-l6 or multilingual-e5-small (or a local Hugging Face folder)",
        )
    unknown = sorted(set(descriptions or {}) - set(labels))
    warnings = []
    if unknown:
        warnings.append(f"data.label_descriptions: {len(unknown)} labels not in train ({', '.join(unknown[:5])})")
    if descriptions and not options.zero_shot:
        warnings.append("data.label_descriptions is used only with model.zero_shot: true")
    return warnings
