"""Text preprocessing for encoder classifiers: token statistics, vocabulary extension, the saved tokenizer and
the dataset the shared loop batches and the micro-batches it splits long batches into."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tokenizers import Tokenizer

if TYPE_CHECKING:  # transformers and pandas take seconds to import; loading a bundle to serve needs neither
    from transformers import PreTrainedTokenizerBase


def length_percentiles(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {}
    p = np.percentile(lengths, [5, 50, 95, 99])
    return {"p5": float(p[0]), "p50": float(p[1]), "p95": float(p[2]), "p99": float(p[3]), "max": int(max(lengths))}


def unknown_rate(tokenizer_dir: Path, texts: list[str]) -> float:
    """Share of tokens the tokenizer maps to its unknown token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    total = sum(len(x) for x in ids)
    unk = sum(x.count(tok.unk_token_id) for x in ids) if tok.unk_token_id is not None else 0
    return unk / total if total else 0.0


UNKNOWN_RATE_LIMIT = 0.02  # above this share of unknown tokens, a tokenizer does not cover the data's script


def coverage_warnings(coverage: dict[str, Any], chosen_by_coverage: bool = False) -> list[str]:
    """A warning when the encoder training will use maps more than UNKNOWN_RATE_LIMIT of the training tokens to
    its unknown token (English MiniLM on Chinese: 66%): those words are invisible to the model. None when `auto`
    chose by coverage (`chosen_by_coverage`): it skips such an encoder and says why in its backbone choice."""
    rate = coverage.get("unknown_rate")
    if chosen_by_coverage or rate is None or rate < UNKNOWN_RATE_LIMIT:
        return []
    return [
        f"{coverage['name']}'s tokenizer maps {rate:.0%} of the training tokens to its unknown token, so the model "
        "cannot read them; backbone: auto picks a bundled encoder that covers them (multilingual-e5-small for "
        "Chinese), or name a local Hugging Face encoder for this language"
    ]


def fit_max_length(tokenizer: PreTrainedTokenizerBase, texts: list[str], limit: int) -> int:
    """The 99th percentile of token lengths (plus special tokens), so almost nothing is cut."""
    lengths = [len(x) for x in tokenizer(texts[:5000], truncation=False)["input_ids"]]
    return int(min(limit, max(16, np.percentile(lengths, 99) + 2)))


def extend_vocabulary(
    tokenizer: PreTrainedTokenizerBase, encoder: torch.nn.Module, texts: list[str], limit: int
) -> int:
    """Add the pieces the tokenizer maps to [UNK] (e.g. Chinese characters for an English model) as new tokens,
    their embeddings starting at the mean of the old ones; fine-tuning then learns them. Returns how many."""
    counts: Counter = Counter()
    pre = tokenizer.backend_tokenizer
    for text in texts:
        for piece, _ in pre.pre_tokenizer.pre_tokenize_str(pre.normalizer.normalize_str(text)):
            counts[piece] += 1
    unknown = [
        p
        for p, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if c >= 2 and tokenizer.convert_tokens_to_ids(tokenizer.tokenize(p)) == [tokenizer.unk_token_id]
    ]
    added = tokenizer.add_tokens(unknown[:limit])
    if added:
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return added


def split_rows(batch: dict[str, torch.Tensor], max_tokens: int) -> list[tuple[dict[str, torch.Tensor], float]]:
    """A right-padded batch cut into near-equal parts of whole rows, each at most `max_tokens` padded tokens (at
    least one row) and trimmed to its own longest row, with its share of the rows (`SplitsBatches`)."""
    rows, width = batch["input_ids"].shape
    count = math.ceil(rows / max(1, max_tokens // width))
    if count <= 1:
        return [(batch, 1.0)]
    size = math.ceil(rows / count)
    parts = []
    for start in range(0, rows, size):
        part = {k: v[start : start + size] for k, v in batch.items()}
        used = int(part["attention_mask"].sum(1).max())
        part["input_ids"], part["attention_mask"] = part["input_ids"][:, :used], part["attention_mask"][:, :used]
        parts.append((part, len(part["input_ids"]) / rows))
    return parts


class TextDataset(torch.utils.data.Dataset):
    def __init__(
        self, input_ids: list[list[int]], labels: list[int] | None, weights: list[float] | None = None
    ) -> None:
        self.input_ids = input_ids
        self.labels = labels
        self.weights = weights  # per-row loss weights (data.label_noise action: weight)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"input_ids": self.input_ids[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        if self.weights is not None:
            item["weight"] = self.weights[i]
        return item


class SavedTokenizer:
    """A saved fast tokenizer read with the `tokenizers` library alone: transformers encodes with the same
    `tokenizer.json` underneath, and importing transformers takes seconds, more than loading the model."""

    def __init__(self, directory: Path, max_length: int) -> None:
        self.directory = directory
        self.backend = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.backend.no_padding()
        self.backend.enable_truncation(max_length)  # longest-first from the right: transformers' truncation=True
        self.pad_token_id = self._token_id("pad_token")

    @staticmethod
    def readable(directory: Path) -> bool:
        return (directory / "tokenizer.json").is_file() and (directory / "tokenizer_config.json").is_file()

    def _token_id(self, role: str) -> int | None:
        """The id of a special token named in tokenizer_config.json (or special_tokens_map.json, older saves)."""
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            path = self.directory / name
            token = json.loads(path.read_text("utf-8")).get(role) if path.is_file() else None
            token = token.get("content") if isinstance(token, dict) else token
            if token:
                return self.backend.token_to_id(token)
        return None

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated; set once above, so threads may encode at the same time."""
        return [encoding.ids for encoding in self.backend.encode_batch(texts)]


def saved_tokenizer(directory: Path, max_length: int) -> PreTrainedTokenizerBase | SavedTokenizer:
    """The `tokenizers`-only reader when the folder has a tokenizer.json, else transformers' own loader."""
    if SavedTokenizer.readable(directory):
        return SavedTokenizer(directory, max_length)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))
