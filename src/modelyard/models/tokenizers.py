"""Tokenizers trained on the user's own data with the `tokenizers` library, wrapped as transformers tokenizers."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
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


def train_tokenizer(texts: list[str], kind: str, vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """`char`: one token per character (Chinese, Japanese); `wordpiece`: subwords learnt from the texts."""
    if kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")]
        )
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS)
        tok.decoder = decoders.Fuse()
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS)
        tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
