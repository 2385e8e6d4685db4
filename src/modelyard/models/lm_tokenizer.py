"""Tokenizers for language models trained from scratch, learnt from the corpus with the `tokenizers` library.

`char`: one token per character, every character of the corpus in the vocabulary (Chinese poems, Shakespeare);
`bpe`: byte-level BPE as in GPT-2, so no text is ever unknown. Both keep whitespace exactly and carry an
`<|endoftext|>` token that separates documents and ends generation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"
UNK = "<unk>"
CHUNK = 1 << 16


def chunks(texts: Sequence[str]) -> Iterator[str]:
    """Texts cut at line breaks into pieces of about 64 KB, so training and encoding can run in parallel."""
    for text in texts:
        start = 0
        while start < len(text):
            end = text.find("\n", start + CHUNK)
            end = len(text) if end < 0 else end + 1
            yield text[start:end]
            start = end


def train(texts: Sequence[str], kind: Literal["char", "bpe"], vocab_size: int = 2048) -> Tokenizer:
    if kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
        tok.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(special_tokens=[EOT, UNK])
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    tok.train_from_iterator(chunks(texts), trainer)
    return tok


class Codec:
    """encode/decode as the generation engine wants them."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.eot_id = tokenizer.token_to_id(EOT)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def encode_corpus(self, documents: Sequence[str]) -> list[int]:
        """All documents as one stream, each followed by <|endoftext|>."""
        ids: list[int] = []
        for doc in documents:
            for enc in self.tokenizer.encode_batch(list(chunks([doc]))):
                ids += enc.ids
            ids.append(self.eot_id)
        return ids
