"""The neural text classifier learner: tokenizer + `EncoderClassifier`, trained by the shared loop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.fsutil import atomic_write_json
from modelyard.learners import linear_probe
from modelyard.metrics.classification import classification_metrics, top_k_answers
from modelyard.models import bert
from modelyard.models.encoder_classifier import EncoderClassifier, LogitsAndEmbedding
from modelyard.models.text_encoder import TextEncoder, TextEncoderConfig
from modelyard.models.tokenizers import cjk_share, train_tokenizer
from modelyard.precision import autocast
from modelyard.runtimes.protocol import OnnxGraph
from modelyard.runtimes.torch_int8 import has_int8_layers, load_weights, run_precision
from modelyard.training.checkpoint import save_weights
from modelyard.training.memory import release_free_memory

if TYPE_CHECKING:  # transformers and pandas take seconds to import; loading a bundle to serve needs neither
    import pandas as pd
    from transformers import PreTrainedTokenizerBase
from modelyard.learners.text_inputs import (
    SavedTokenizer,
    TextDataset,
    extend_vocabulary,
    fit_max_length,
    saved_tokenizer,
    split_rows,
)

PREDICT_BATCH = 64
# Padded tokens in a training batch above which a pretrained encoder recomputes each layer's activations in the
# backward pass (activation checkpointing) instead of holding them: 32 texts x 256 tokens held 6.5 GB in
# multilingual-e5-small (attention scores alone are batch x heads x T x T per layer). Shorter batches keep the
# cheaper step: recomputing costs about one more forward pass.
RECOMPUTE_TOKENS = 2048
MAX_AUTO_LENGTH = 256
NO_DECAY = ("bias", "LayerNorm.weight", "norm", "layer_norm")

PRETRAINED_DEFAULTS = {"epochs": 5, "batch_size": 32, "learning_rate": 1e-4, "scheduler": "linear"}
# Chosen per backbone on VALIDATION accuracy alone (benchmarks/text_defaults_sweep.py, one setting varied at a time
# around the earlier default; the test sets were read only after the choice):
BACKBONE_DEFAULTS = {
    # BANKING77, 10% validation: 8 epochs at 1e-4 94.2% (5 epochs 94.0%, 12: 93.8%; 8 at 5e-5 93.9%, at 2e-4 93.8%)
    "minilm-l6": {"epochs": 8},
    # waimai_10k, split seeds 0-1: 2 epochs at 5e-5 91.4% (3: 90.7%, 4: 90.8%; 3 at 2e-5 90.8%, at 1e-4 90.4%)
    "multilingual-e5-small": {"learning_rate": 5e-5, "epochs": 2},
}
FROZEN_SHARE = 2 / 3  # freeze_embeddings unset: freeze a word-embedding matrix over this share of the encoder
SCRATCH_DEFAULTS = {"epochs": 15, "batch_size": 64, "learning_rate": 1e-3, "scheduler": "linear"}


def freeze_word_embeddings(encoder: nn.Module, setting: bool | None, added: int) -> bool:
    """Keep the word-embedding matrix fixed when `setting` says so or, unset, when it is over FROZEN_SHARE of the
    model and no tokens were added. A 250k-token multilingual matrix is 81% of multilingual-e5-small: its dense
    gradient and AdamW update were half of every training step, while a few thousand examples touch few rows."""
    embeddings = encoder.get_input_embeddings().weight
    if setting is None:
        total = sum(p.numel() for p in encoder.parameters())
        setting = added == 0 and embeddings.numel() > FROZEN_SHARE * total
    embeddings.requires_grad_(not setting)
    return bool(setting)


def set_recompute(encoder: nn.Module, wanted: bool) -> None:
    """Turn a Hugging Face encoder's activation checkpointing on or off (nothing when it has none)."""
    if getattr(encoder, "supports_gradient_checkpointing", False) and wanted != encoder.is_activation_checkpointing:
        if wanted:
            encoder.activation_checkpointing_enable()
        else:
            encoder.activation_checkpointing_disable()


def layers_below_top(name: str, layers: int) -> int:
    """How far below the top encoder layer a parameter sits: 0 for the top layer (and what follows it), `layers`
    for the embeddings. Names follow Hugging Face encoders (`encoder.layer.3.`, `embeddings.`)."""
    if ".embeddings." in f".{name}":
        return layers
    match = re.search(r"\.layer\.(\d+)\.", name)
    return layers - 1 - int(match.group(1)) if match else 0


def _saved_classifier(directory: Path, spec: dict[str, Any], labels: list[str], options: Any) -> EncoderClassifier:
    """The architecture of a bundle, weights not loaded: BERT configs in plain PyTorch (fast to import), other
    Hugging Face configs through transformers, scratch encoders from their spec."""
    if spec["kind"] != "hf":
        encoder = TextEncoder(TextEncoderConfig(**spec["encoder"]))
        return EncoderClassifier(encoder, encoder.hidden_size, len(labels), options.dropout)
    raw = bert.read_settings(directory / "encoder")
    if bert.supports(raw):
        return EncoderClassifier(
            bert.BertEncoder(bert.BertSettings.from_dict(raw)), raw["hidden_size"], len(labels), options.dropout
        )
    from transformers import AutoConfig, AutoModel

    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(directory / "encoder")))
    return EncoderClassifier(encoder, encoder.config.hidden_size, len(labels), options.dropout)


def pretrained_defaults(backbone: str) -> dict[str, Any]:
    """The training settings a pretrained encoder fine-tunes with when the config leaves them empty."""
    return {**PRETRAINED_DEFAULTS, **BACKBONE_DEFAULTS.get(backbone, {})}


class TextClassifierLearner:
    """Tokenizer, encoder and head; `kind` is "hf" (pretrained Hugging Face encoder) or "scratch"."""

    def __init__(
        self,
        module: EncoderClassifier | None,
        tokenizer: PreTrainedTokenizerBase | SavedTokenizer,
        labels: list[str],
        spec: dict[str, Any],
        options: Any,
    ) -> None:
        self.module = module
        saved = isinstance(tokenizer, SavedTokenizer)
        self._saved = tokenizer if saved else None
        self._tokenizer = None if saved else tokenizer
        self.pad_id = tokenizer.pad_token_id or 0
        self.labels = labels
        self.spec = spec  # what `load` needs to rebuild the architecture
        self.backbone = spec["backbone"]
        self.options = options
        self.precision = spec.get("precision", "fp32")
        self.label_index = {label: i for i, label in enumerate(labels)}
        self.recompute = True  # activation checkpointing on long batches (off under DP-SGD: learners/text_private)

    @classmethod
    def pretrained(cls, path: Path, backbone: str, options: Any, labels: list[str], texts: list[str]):
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        settings = AutoConfig.from_pretrained(str(path))
        if hasattr(settings, "attention_probs_dropout_prob"):  # BERT-style encoders name it so
            settings.attention_probs_dropout_prob = options.attention_dropout
        encoder = AutoModel.from_pretrained(str(path), config=settings)
        added = extend_vocabulary(tokenizer, encoder, texts, options.vocab_size) if options.extend_vocabulary else 0
        limit = min(MAX_AUTO_LENGTH, getattr(encoder.config, "max_position_embeddings", 512))
        max_length = options.max_length or fit_max_length(tokenizer, texts, limit)
        module = EncoderClassifier(encoder, encoder.config.hidden_size, len(labels), options.dropout)
        frozen = freeze_word_embeddings(encoder, options.freeze_embeddings, added)
        spec = {"kind": "hf", "backbone": backbone, "max_length": max_length, "added_tokens": added}
        spec["frozen_embeddings"] = frozen
        return cls(module, tokenizer, labels, spec, options)

    @classmethod
    def scratch(cls, options: Any, labels: list[str], texts: list[str]):
        kind = options.tokenizer
        if kind == "auto":
            kind = "char" if cjk_share(texts[:2000]) > 0.3 else "wordpiece"
        tokenizer = train_tokenizer(texts, kind, options.vocab_size)
        max_length = options.max_length or fit_max_length(tokenizer, texts, MAX_AUTO_LENGTH)
        enc_cfg = TextEncoderConfig(
            vocab_size=len(tokenizer),
            max_length=max_length,
            hidden_size=options.hidden_size,
            layers=options.layers,
            heads=options.heads,
            dropout=options.dropout,
            pad_id=tokenizer.pad_token_id,
        )
        module = EncoderClassifier(TextEncoder(enc_cfg), enc_cfg.hidden_size, len(labels), options.dropout)
        spec = {
            "kind": "scratch",
            "backbone": "scratch-transformer",
            "tokenizer": kind,
            "max_length": max_length,
            "encoder": enc_cfg.as_dict(),
        }
        return cls(module, tokenizer, labels, spec, options)

    @classmethod
    def load(cls, directory: Path, options: Any, labels: list[str], spec: dict[str, Any]):
        module = load_weights(_saved_classifier(directory, spec, labels, options), directory / "model.safetensors")
        spec = {**spec, "precision": run_precision(module, spec.get("precision", "fp32"))}
        return cls(module.eval(), saved_tokenizer(directory / "tokenizer", spec["max_length"]), labels, spec, options)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The transformers tokenizer (training, explanations, saving); a loaded bundle reads it on first use."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self._saved.directory))
        return self._tokenizer

    @property
    def buckets_lengths(self) -> bool:
        """Whether a mixed-length batch costs no padding here: the plain-PyTorch BERT runs its linear layers on
        real tokens and attention per length bucket, so a server need not cut batches by length for it."""
        module = getattr(self.module, "module", self.module)  # unwrap DistributedDataParallel
        return isinstance(getattr(module, "encoder", None), bert.BertEncoder)

    @property
    def differentiable(self) -> bool:
        """Whether gradients reach the inputs (explanations): not through ONNX Runtime or int8 kernels."""
        return self.module is not None and not has_int8_layers(self.module)

    def train_defaults(self) -> dict[str, Any]:
        if self.spec["kind"] != "hf":
            return dict(SCRATCH_DEFAULTS)
        return pretrained_defaults(self.backbone)

    @property
    def probe_head(self) -> bool:
        """Whether the head starts from a linear probe of the pretrained encoder (LP-FT) rather than at random."""
        return self.spec["kind"] == "hf" and self.options.head_init == "linear_probe"

    @torch.no_grad()
    def start_head_from_probe(self, train: pd.DataFrame, precision: str) -> None:
        """LP-FT's first half: logistic regression on the frozen encoder's pooled embeddings of the training texts
        becomes the head, so fine-tuning starts from a working classifier whatever its learning rate and length."""
        self.precision = precision
        x = self.embed(train["text"].tolist())
        weight, bias = linear_probe.linear_head(linear_probe.fit_probe(x, train["label"].map(self.label_index).values))
        self.module.head.weight.copy_(weight)
        self.module.head.bias.copy_(bias)

    def encode(self, texts: list[str]) -> list[list[int]]:
        if prefix := self.spec.get("text_prefix"):  # e.g. E5's "query: " (few-shot and zero-shot bundles)
            texts = [prefix + t for t in texts]
        if self._saved is not None:
            return self._saved.encode(texts)
        return self.tokenizer(texts, truncation=True, max_length=self.spec["max_length"])["input_ids"]

    def dataset(self, data: pd.DataFrame, training: bool) -> TextDataset:
        weights = data["weight"].tolist() if "weight" in data else None  # data.label_noise action: weight
        return TextDataset(self.encode(data["text"].tolist()), data["label"].map(self.label_index).tolist(), weights)

    def lengths(self, dataset: TextDataset) -> list[int]:
        return [len(x) for x in dataset.input_ids]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(x["input_ids"]) for x in items)
        pad = self.pad_id
        ids = torch.full((len(items), width), pad, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            ids[row, :n] = torch.tensor(item["input_ids"])
            mask[row, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in items[0]:
            batch["labels"] = torch.tensor([x["labels"] for x in items])
        if "weight" in items[0]:
            batch["weight"] = torch.tensor([x["weight"] for x in items], dtype=torch.float32)
        return batch

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(batch["input_ids"], batch["attention_mask"])

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self._recompute_if_long(batch["input_ids"])
        logits = self.logits(batch)
        if "weight" in batch:  # rows that look mislabelled count for the probability of their label
            losses = F.cross_entropy(
                logits.float(), batch["labels"], label_smoothing=self.options.label_smoothing, reduction="none"
            )
            return (losses * batch["weight"]).mean()
        return F.cross_entropy(logits.float(), batch["labels"], label_smoothing=self.options.label_smoothing)

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[tuple[dict[str, torch.Tensor], float]]:
        """Batches of (text, label) rows over `model.micro_batch_tokens` padded tokens in parts (SplitsBatches):
        long batches' attention scores (batch x heads x T x T) dominate a step's memory, and a 16 x 256 part fills
        the matrix kernels about as well as 32 x 256. Others stay whole (a few-shot pair batch has no labels, and
        its loss compares its two halves)."""
        return split_rows(batch, self.options.micro_batch_tokens) if "labels" in batch else [(batch, 1.0)]

    def _recompute_if_long(self, input_ids: torch.Tensor) -> None:
        """Activation checkpointing for this batch when it is over RECOMPUTE_TOKENS (Hugging Face encoders)."""
        encoder = getattr(self.module, "module", self.module).encoder
        if not self.recompute or not getattr(encoder, "supports_gradient_checkpointing", False):
            return
        wanted = input_ids.numel() > RECOMPUTE_TOKENS
        if wanted:  # the peaks come with long batches: start them without the previous steps' freed blocks
            release_free_memory()
        set_recompute(encoder, wanted)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """No decay on biases and norms. Pretrained only: a random head learns `head_lr_multiplier` times faster
        (a probe-initialised one at `lr`), and each encoder layer `layer_decay` times slower than the one above it
        (the embeddings slowest)."""
        pretrained = self.spec["kind"] == "hf"
        head_lr = lr * (self.options.head_lr_multiplier if pretrained and not self.probe_head else 1.0)
        layer_decay = self.options.layer_decay if pretrained else 1.0
        layers = getattr(getattr(self.module.encoder, "config", None), "num_hidden_layers", 0)
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        for name, param in self.module.named_parameters():
            if not param.requires_grad:
                continue
            decay = 0.0 if any(k in name for k in NO_DECAY) else weight_decay
            rate = head_lr if name.startswith("head.") else lr * layer_decay ** layers_below_top(name, layers)
            groups.setdefault((rate, decay), []).append(param)
        return [{"params": p, "lr": rate, "weight_decay": decay} for (rate, decay), p in groups.items()]

    @staticmethod
    def _batches(ids: list[list[int]]) -> list[np.ndarray]:
        """Row indices in length-sorted batches of PREDICT_BATCH, so little is padded."""
        order = np.argsort([len(x) for x in ids], kind="stable")
        return [order[start : start + PREDICT_BATCH] for start in range(0, len(order), PREDICT_BATCH)]

    def _forward_all(self, texts: list[str], fn: str) -> np.ndarray:
        """Run `fn` ("forward" or "embed") over texts in length-sorted batches; rows come back in input order."""
        ids = self.encode(texts)
        chunks = self._batches(ids)
        order = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        outputs = [self._run_batch(self.collate([{"input_ids": ids[i]} for i in c]), fn) for c in chunks]
        result = np.concatenate(outputs) if outputs else np.zeros((0, len(self.labels)), dtype=np.float32)
        if fn == "forward":
            result = self.activate(result)
        unsorted = np.empty_like(result)
        unsorted[order] = result
        return unsorted

    @torch.inference_mode()
    def _run_batch(self, batch: dict[str, torch.Tensor], fn: str) -> np.ndarray:
        """Logits ("forward") or pooled embeddings ("embed") of one batch from the torch module."""
        module = getattr(self.module, "module", self.module)  # unwrap DistributedDataParallel
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        with autocast(self.precision, device):
            out = getattr(module, fn)(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        module.train(was_training)
        return out.float().cpu().numpy()

    @staticmethod
    def activate(logits: np.ndarray) -> np.ndarray:
        """Scores from logits: softmax over the classes (a multi-label learner takes a sigmoid per label)."""
        result = np.exp(logits - logits.max(1, keepdims=True))
        return result / result.sum(1, keepdims=True)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self._forward_all(texts, "forward")

    def embed(self, texts: list[str]) -> np.ndarray:
        """Pooled sentence embeddings (for drift monitoring and explanations)."""
        return self._forward_all(texts, "embed")

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        units, outputs = self.eval_outputs(data)
        return self.eval_score(data, outputs[np.argsort(units)])

    def eval_outputs(self, data: pd.DataFrame, shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Rows and their predicted label indices, from every shard[1]-th length-sorted batch (ShardedEvaluation)."""
        ids = self.encode(data["text"].tolist())
        chunks = self._batches(ids)[shard[0] :: shard[1]]
        logits = [self._run_batch(self.collate([{"input_ids": ids[i]} for i in c]), "forward") for c in chunks]
        if not chunks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(chunks), np.concatenate(logits).argmax(1)

    def eval_score(self, data: pd.DataFrame, outputs: np.ndarray) -> dict[str, Any]:
        return classification_metrics(data["label"].map(self.label_index).tolist(), outputs.tolist(), self.labels)

    def predict(self, inputs: list[str], top_k: int = 1) -> list[dict[str, Any]]:
        return top_k_answers(self.predict_proba([str(x) for x in inputs]), self.labels, top_k)

    def save(self, directory: Path) -> dict[str, Any]:
        module = getattr(self.module, "module", self.module)
        save_weights(module, directory / "model.safetensors")
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        if self.spec["kind"] == "hf":
            module.encoder.config.save_pretrained(str(directory / "encoder"))
        atomic_write_json(directory / "text_model.json", {**self.spec, "precision": self.precision})
        return {"labels": self.labels}

    def onnx_graph(self) -> OnnxGraph:
        """Logits and pooled embedding from token ids and mask, dynamic in batch and sequence length."""
        module = getattr(self.module, "module", self.module)
        batch = self.collate([{"input_ids": x} for x in self.encode(["an example", "a longer example"])])
        axes = {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"},
            "embedding": {0: "batch"},
        }
        return OnnxGraph(
            LogitsAndEmbedding(module),
            (batch["input_ids"], batch["attention_mask"]),
            ["input_ids", "attention_mask"],
            ["logits", "embedding"],
            axes,
            "dynamic",
        )

    def export_examples(self, data: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        return data["text"].tolist(), data["label"].map(self.label_index).to_numpy()

    def export_outputs(self, inputs: list[str]) -> np.ndarray:
        return self.predict_proba(inputs)
