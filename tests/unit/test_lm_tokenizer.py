"""Tokenizers learnt from the corpus keep text exactly, Chinese included."""

from __future__ import annotations

from modelyard.models import lm_tokenizer

ENGLISH = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n  Speak, speak.\n"
CHINESE = "西陸蟬聲唱，南冠客思侵。\n那堪玄鬢影，來對白頭吟。\n"


def test_a_char_tokenizer_has_one_token_per_character_and_round_trips_english():
    tok = lm_tokenizer.train([ENGLISH], "char")
    codec = lm_tokenizer.Codec(tok)
    ids = codec.encode(ENGLISH)
    assert len(ids) == len(ENGLISH) and codec.decode(ids) == ENGLISH
    assert tok.get_vocab_size() == len(set(ENGLISH)) + 2  # + <|endoftext|> and <unk>


def test_a_char_tokenizer_round_trips_chinese_poems():
    codec = lm_tokenizer.Codec(lm_tokenizer.train([CHINESE], "char"))
    ids = codec.encode(CHINESE)
    assert len(ids) == len(CHINESE) and codec.decode(ids) == CHINESE


def test_a_byte_level_bpe_tokenizer_round_trips_text_it_never_saw():
    codec = lm_tokenizer.Codec(lm_tokenizer.train([ENGLISH * 20], "bpe", vocab_size=300))
    text = "Speak, 西陸蟬 — ünïcode!\n"
    assert codec.decode(codec.encode(text)) == text
    assert len(codec.encode(ENGLISH)) < len(ENGLISH)  # merges were learnt


def test_documents_are_separated_by_the_end_of_text_token():
    codec = lm_tokenizer.Codec(lm_tokenizer.train(["ab", "ba"], "char"))
    ids = codec.encode_corpus(["ab", "ba"])
    assert ids.count(codec.eot_id) == 2 and ids[2] == codec.eot_id
