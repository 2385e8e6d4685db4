"""Tokenizers trained on the user's own data with the `tokenizers` library, wrapped as transformers tokenizers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

if TYPE_CHECKING:  # transformers takes seconds to import: only training a tokenizer needs it
    from transformers import PreTrainedTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def cjk_share(texts: Iterable[str]) -> float:
    """Share of characters that are CJK ideographs, kana or hangul: such text is tokenized by character."""
    total = cjk = 0
    for text in texts:
        for ch in text:
            if not ch.isspace():
                total += 1
                cjk += "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"
    return cjk / total if total else 0.0


def _ranked(counts: Counter, min_count: int = 1) -> list[str]:
    """Most frequent first, ties broken alphabetically: the same data always gives the same vocabulary."""
    return [k for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]


def _vocabulary(texts: list[str], tok: Tokenizer, kind: str, vocab_size: int) -> dict[str, int]:
    """Characters always (so nothing is unknown that was seen), then the most frequent whole words (wordpiece)."""
    words: Counter = Counter()
    chars: Counter = Counter()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            words[word] += 1
            chars.update(word)
    tokens = list(SPECIALS) + _ranked(chars)
    if kind == "wordpiece":
        tokens += ["##" + ch for ch in _ranked(chars)]
        budget = max(0, vocab_size - len(tokens))
        tokens += [w for w in _ranked(words, min_count=2) if len(w) > 1][:budget]
    else:
        tokens = tokens[:vocab_size]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def train_tokenizer(texts: list[str], kind: str, vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """`char`: one token per character (Chinese, Japanese); `wordpiece`: frequent words, the rest by character.

    The vocabulary is built deterministically from counts (the `tokenizers` trainers break ties differently on
    every run, which would make training irreproducible).
    """
    probe = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    if kind == "char":
        probe.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        probe.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")]
        )
        tok = Tokenizer(models.WordLevel(_vocabulary(texts, probe, kind, vocab_size), unk_token="[UNK]"))
        tok.decoder = decoders.Fuse()
    else:
        probe.normalizer = normalizers.BertNormalizer(lowercase=True)
        probe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok = Tokenizer(models.WordPiece(_vocabulary(texts, probe, kind, vocab_size), unk_token="[UNK]"))
        tok.decoder = decoders.WordPiece()
    tok.normalizer, tok.pre_tokenizer = probe.normalizer, probe.pre_tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
