"""The token classification learner: a pretrained encoder with a per-token head, trained by the shared loop.

Words come from `data.entities.split_words` (each CJK character is a word), are encoded pre-tokenized with
the encoder's fast tokenizer, and only the FIRST sub-token of each word carries its BIO tag (the others are
ignored by the loss, index -100); predictions read the tag of that first sub-token and come back as character
spans of the original text. A sub-token that is only SentencePiece's word marker "▁" (XLM-R vocabularies put
one before every CJK character given as its own word) is dropped when the word has other pieces: it carries
nothing and would double the length of Chinese text.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from modelyard.data.entities import OUTSIDE, split_words, tag_spans, word_tags
from modelyard.drift.statistics import bin_counts, quantile_edges
from modelyard.fsutil import atomic_write_json
from modelyard.learners.text import NO_DECAY, freeze_word_embeddings
from modelyard.metrics.entities import entity_metrics
from modelyard.models import bert
from modelyard.models.token_tagger import TokenTagger
from modelyard.precision import autocast
from modelyard.runtimes.protocol import OnnxGraph
from modelyard.runtimes.torch_int8 import load_weights, run_precision
from modelyard.training.checkpoint import save_weights

if TYPE_CHECKING:
    import pandas as pd

IGNORE = -100
PREDICT_BATCH = 64
MAX_AUTO_LENGTH = 256
SPEC_FILE = "token_model.json"
# MiniLM on WNUT-17 (3,394 tweets): 5 epochs at 1e-4, a head 10x faster; the 118M e5 encoder takes a smaller rate
DEFAULTS = {"epochs": 5, "batch_size": 32, "learning_rate": 1e-4, "scheduler": "linear"}
BACKBONE_DEFAULTS = {"multilingual-e5-small": {"learning_rate": 5e-5, "epochs": 4}}
HEAD_LR_MULTIPLIER = 10.0


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, input_ids: list[list[int]], labels: list[list[int]]) -> None:
        self.input_ids = input_ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def _objects(items: list[Any]) -> np.ndarray:
    """A 1-D object array of `items` (numpy would try to stack equal-length ones)."""
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def _backend(tokenizer_json: str, max_length: int) -> Tokenizer:
    """A private copy of the fast tokenizer's engine: no padding, truncation at `max_length`."""
    backend = Tokenizer.from_str(tokenizer_json)
    backend.no_padding()
    backend.enable_truncation(max_length)
    return backend


def _saved_tagger(directory: Path, spec: dict[str, Any]) -> TokenTagger:
    """The bundle's architecture, weights not loaded: BERT configs in plain PyTorch (fast), others via transformers."""
    raw = bert.read_settings(directory / "encoder")
    if bert.supports(raw):
        encoder = bert.BertEncoder(bert.BertSettings.from_dict(raw))
        return TokenTagger(encoder, raw["hidden_size"], len(spec["tags"]), spec["dropout"])
    from transformers import AutoConfig, AutoModel

    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(directory / "encoder")))
    return TokenTagger(encoder, encoder.config.hidden_size, len(spec["tags"]), spec["dropout"])


class TokenTaggerLearner:
    """Encoder + token head; `spec` holds what `load` needs (tags, max length, special token ids)."""

    def __init__(self, module: TokenTagger, backend: Tokenizer, spec: dict[str, Any]) -> None:
        self.module = module
        self.backend = backend
        self.spec = spec
        self.backbone = spec["backbone"]
        self.tags = spec["tags"]
        self.labels = sorted({t[2:] for t in self.tags if t != OUTSIDE})  # entity types, for /v1/model
        self.tag_index = {t: i for i, t in enumerate(self.tags)}
        self.precision = spec.get("precision", "fp32")

    @classmethod
    def pretrained(cls, path: Path, backbone: str, options: Any, tags: list[str], texts: list[str]):
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        if not tokenizer.is_fast:
            from modelyard.errors import ModelNotFoundError

            raise ModelNotFoundError(f"{path}: token classification needs a fast tokenizer (tokenizer.json)")
        encoder = AutoModel.from_pretrained(str(path))
        limit = min(MAX_AUTO_LENGTH, getattr(encoder.config, "max_position_embeddings", 512))
        spec = {
            "backbone": backbone,
            "tags": tags,
            "dropout": options.dropout,
            "pad_id": tokenizer.pad_token_id or 0,
            "blank_id": tokenizer.convert_tokens_to_ids("▁") if "▁" in tokenizer.get_vocab() else None,
            "max_length": limit,
        }
        backend = _backend(tokenizer.backend_tokenizer.to_str(), limit)
        module = TokenTagger(encoder, encoder.config.hidden_size, len(tags), options.dropout)
        learner = cls(module, backend, spec)
        if options.max_length:
            learner.spec["max_length"] = options.max_length
        else:  # the 99th percentile of sub-token lengths, so almost nothing is cut
            lengths = [len(ids) for ids, _ in learner._encode(texts[:5000])]
            learner.spec["max_length"] = int(min(limit, max(16, np.percentile(lengths, 99) + 2))) if lengths else 64
        learner.backend.enable_truncation(learner.spec["max_length"])
        learner.spec["frozen_embeddings"] = freeze_word_embeddings(encoder, options.freeze_embeddings, 0)
        return learner

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]):
        module = load_weights(_saved_tagger(directory, spec), directory / "model.safetensors")
        spec = {**spec, "precision": run_precision(module, spec.get("precision", "fp32"))}
        tokenizer_json = (directory / "tokenizer" / "tokenizer.json").read_text(encoding="utf-8")
        return cls(module.eval(), _backend(tokenizer_json, spec["max_length"]), spec)

    def train_defaults(self) -> dict[str, Any]:
        return {**DEFAULTS, **BACKBONE_DEFAULTS.get(self.backbone, {})}

    def _encode(self, texts: list[str], backend: Tokenizer | None = None) -> list[tuple[list[int], list[int]]]:
        """Per text: token ids, and for each word the position of its first kept sub-token (-1: truncated); cut
        at max_length unless given an untruncating `backend`."""
        words = [[text[s:e] for s, e in split_words(text)] for text in texts]
        blank = self.spec.get("blank_id")
        out = []
        encodings = (backend or self.backend).encode_batch(words, is_pretokenized=True)
        for pieces, encoding in zip(words, encodings, strict=True):
            ids, firsts = [], [-1] * len(pieces)
            word_ids = encoding.word_ids
            for pos, (token, word) in enumerate(zip(encoding.ids, word_ids, strict=True)):
                follows = pos + 1 < len(word_ids) and word_ids[pos + 1] == word
                if word is not None and token == blank and follows and firsts[word] < 0:
                    continue  # a bare "▁" before the word's real pieces
                if word is not None and firsts[word] < 0:
                    firsts[word] = len(ids)
                ids.append(token)
            out.append((ids, firsts))
        return out

    def dataset(self, data: pd.DataFrame, training: bool) -> TokenDataset:
        encoded = self._encode(data["text"].tolist())
        all_ids, all_labels = [], []
        for (ids, firsts), text, entities in zip(encoded, data["text"], data["entities"], strict=True):
            tags, _ = word_tags(text, entities, split_words(text))
            labels = [IGNORE] * len(ids)
            for first, tag in zip(firsts, tags, strict=True):
                if first >= 0:
                    labels[first] = self.tag_index.get(tag, self.tag_index[OUTSIDE])  # unseen types: O
            all_ids.append(ids)
            all_labels.append(labels)
        return TokenDataset(all_ids, all_labels)

    def lengths(self, dataset: TokenDataset) -> list[int]:
        return [len(x) for x in dataset.input_ids]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), width), self.spec["pad_id"], dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            ids[row, :n] = torch.tensor(item["input_ids"])
            mask[row, :n] = 1
            if "labels" in item:
                labels[row, :n] = torch.tensor(item["labels"])
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in items[0]:
            batch["labels"] = labels
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.module(batch["input_ids"], batch["attention_mask"])  # (B, T, tags)
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """No decay on biases and norms; the new head learns HEAD_LR_MULTIPLIER times faster."""
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        for name, param in self.module.named_parameters():
            if param.requires_grad:
                decay = 0.0 if any(k in name for k in NO_DECAY) else weight_decay
                rate = lr * HEAD_LR_MULTIPLIER if name.startswith("head.") else lr
                groups.setdefault((rate, decay), []).append(param)
        return [{"params": p, "lr": rate, "weight_decay": decay} for (rate, decay), p in groups.items()]

    @torch.inference_mode()
    def tag_probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        """(B, T, tags) tag probabilities of one padded batch (the ONNX learner answers through its session)."""
        module = getattr(self.module, "module", self.module)  # unwrap DistributedDataParallel
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        with autocast(self.precision, device):
            logits = module(input_ids.to(device), attention_mask.to(device))
        module.train(was_training)
        return torch.softmax(logits.float(), -1).cpu().numpy()

    def _windows(self, ids: list[int], firsts: list[int]) -> tuple[list[list[int]], list[tuple[int, int]]]:
        """A text longer than max_length as overlapping windows of it (each with the special tokens around it,
        advancing half a window), and per word (window, position) of its first sub-token in the window where
        it has the most context on both sides; a text that fits is its own one window."""
        limit = self.spec["max_length"]
        if len(ids) <= limit:
            return [ids], [(0, first) for first in firsts]
        head, tail = self._special_counts
        body = ids[head : len(ids) - tail]
        width = max(1, limit - head - tail)
        step = max(1, width // 2)
        starts = list(range(0, max(1, len(body) - width + step), step))
        windows = [ids[:head] + body[s : s + width] + ids[len(ids) - tail :] for s in starts]
        where = []
        for first in firsts:
            if first < 0:  # a word the tokenizer makes nothing of
                where.append((-1, 0))
                continue
            at = first - head
            best = max(
                (w for w, s in enumerate(starts) if s <= at < s + width),
                key=lambda w: min(at - starts[w], starts[w] + width - 1 - at),
            )
            where.append((best, at - starts[best] + head))
        return windows, where

    @cached_property
    def _special_counts(self) -> tuple[int, int]:
        """How many special tokens the tokenizer puts before and after a text ([CLS] and [SEP]: 1 and 1)."""
        word_ids = self.backend.encode(["a"], is_pretokenized=True).word_ids
        content = [i for i, w in enumerate(word_ids) if w is not None]
        return content[0], len(word_ids) - content[-1] - 1

    @cached_property
    def _untruncated(self) -> Tokenizer:
        """The tokenizer without the max_length cut, for prediction (long texts are read in windows)."""
        backend = Tokenizer.from_str(self.backend.to_str())
        backend.no_truncation()
        return backend

    def word_probabilities(self, texts: list[str]) -> list[np.ndarray]:
        """Per text: (words, tags) probabilities read at each word's first sub-token; a text longer than
        max_length sub-tokens is read in overlapping windows, so every word is tagged in context."""
        encoded = [self._windows(ids, firsts) for ids, firsts in self._encode(texts, self._untruncated)]
        windows = [(t, w) for t, (ids, _) in enumerate(encoded) for w in range(len(ids))]
        probs: dict[tuple[int, int], np.ndarray] = {}
        order = np.argsort([len(encoded[t][0][w]) for t, w in windows], kind="stable")
        for start in range(0, len(order), PREDICT_BATCH):
            chunk = [windows[i] for i in order[start : start + PREDICT_BATCH]]
            batch = self.collate([{"input_ids": encoded[t][0][w]} for t, w in chunk])
            out = self.tag_probabilities(batch["input_ids"], batch["attention_mask"])  # (B, T, tags)
            probs.update({key: out[row] for row, key in enumerate(chunk)})
        results = []
        for t, (_, where) in enumerate(encoded):
            words = np.zeros((len(where), len(self.tags)), dtype=np.float32)
            words[:, self.tag_index[OUTSIDE]] = 1.0
            for word, (w, pos) in enumerate(where):
                if w >= 0:
                    words[word] = probs[(t, w)][pos]
            results.append(words)
        return results

    def word_predictions(self, texts: list[str]) -> list[tuple[list[tuple[int, int]], list[str], list[float]]]:
        """Per text: its words, the predicted BIO tag and probability of each."""
        results = []
        for text, probs in zip(texts, self.word_probabilities(texts), strict=True):
            best = probs.argmax(-1)
            scores = [float(x) for x in probs[np.arange(len(best)), best]]
            results.append((split_words(text), [self.tags[b] for b in best], scores))
        return results

    def predict_tags(self, texts: list[str]) -> list[list[str]]:
        return [tags for _, tags, _ in self.word_predictions(texts)]

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        gold = [word_tags(t, e, split_words(t))[0] for t, e in zip(data["text"], data["entities"], strict=True)]
        return entity_metrics(gold, self.predict_tags(data["text"].tolist()))

    def predict(self, inputs: list[str], top_k: int = 1) -> list[dict[str, Any]]:
        """Per input: `entities`, each with start/end character offsets, label, score and the surface text."""
        texts = [str(x) for x in inputs]
        return [
            {"entities": tag_spans(text, words, tags, scores)}
            for text, (words, tags, scores) in zip(texts, self.word_predictions(texts), strict=True)
        ]

    def example_input(self) -> str:
        return "Ada Lovelace met Charles Babbage in London."

    explainable = True  # integrated gradients need the PyTorch module (not an ONNX export)
    export_kind = "entities"  # the parity check compares entity spans, word by word

    def explain(self, text: str, label: str | None = None) -> dict[str, Any]:
        """Per-token attributions for one predicted entity (the first, or the first of type `label`)."""
        from modelyard.learners.token_explain import explain_entity

        return explain_entity(self, text, label)

    def onnx_graph(self) -> OnnxGraph:
        """Tag logits (B, T, tags) from token ids and mask, dynamic in batch and sequence length."""
        module = getattr(self.module, "module", self.module)
        batch = self.collate([{"input_ids": ids} for ids, _ in self._encode(["an example", "a longer example"])])
        axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "logits")}
        args = (batch["input_ids"], batch["attention_mask"])
        return OnnxGraph(module, args, ["input_ids", "attention_mask"], ["logits"], axes, "dynamic")

    def export_examples(self, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        """Texts and, per text, the gold BIO tag of each word (an object array: texts differ in length)."""
        gold = [word_tags(t, e, split_words(t))[0] for t, e in zip(data["text"], data["entities"], strict=True)]
        return data["text"].tolist(), _objects(gold)

    def export_outputs(self, inputs: list[str]) -> np.ndarray:
        """Per text, its (words, tags) probabilities (an object array)."""
        return _objects(self.word_probabilities([str(x) for x in inputs]))

    def reference_profile(self, splits: dict[str, Any]) -> dict[str, Any]:
        """Input lengths (characters) and the training entity types, for `modelyard monitor`."""
        lengths = np.concatenate([f["text"].str.len().to_numpy() for f in splits.values() if len(f)])
        edges = quantile_edges(lengths, 10)
        counts: dict[str, int] = {}
        for entities in splits["train"]["entities"]:
            for span in entities:
                counts[span["label"]] = counts.get(span["label"], 0) + 1
        return {
            "lengths": {
                "unit": "characters",
                "edges": edges,
                "counts": bin_counts(lengths, edges).tolist(),
                "mean": round(float(lengths.mean()), 2),
            },
            "entity_types": counts,
        }

    def save(self, directory: Path) -> dict[str, Any]:
        module = getattr(self.module, "module", self.module)
        save_weights(module, directory / "model.safetensors")
        (directory / "tokenizer").mkdir(exist_ok=True)
        self.backend.save(str(directory / "tokenizer" / "tokenizer.json"))
        module.encoder.config.save_pretrained(str(directory / "encoder"))
        atomic_write_json(directory / SPEC_FILE, {**self.spec, "precision": self.precision})
        return {"labels": self.labels}
