"""A saved text classifier loads without transformers: plain-PyTorch BERT and the `tokenizers` reader must
compute exactly what transformers computes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from modelyard.learners.text_inputs import SavedTokenizer
from modelyard.models import bert, catalog

TEXTS = [
    "I still have not received my new card",
    "",
    "Why was I charged a fee for withdrawing cash? " * 20,
    "中文 测试 café naïve [CLS] [PAD]",
]


@pytest.mark.parametrize("padded", [True, False], ids=["padded batch", "batch without padding"])
def test_the_plain_pytorch_bert_computes_what_transformers_bert_computes(padded):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    reference = BertModel(config).eval()
    ours = bert.BertEncoder(bert.BertSettings.from_dict(config.to_dict())).eval()
    ours.load_state_dict(reference.state_dict())  # strict: the same parameter names, one for one
    ids = torch.randint(1, 120, (3, 9))
    mask = torch.ones_like(ids)
    if padded:  # real tokens are packed for the Linear layers; a batch without padding skips packing and mask
        mask[1, 5:] = 0
        mask[2, 2:] = 0
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    assert torch.allclose(got * mask[..., None], expected * mask[..., None], atol=1e-5)


def test_a_batch_of_very_different_lengths_attends_per_length_bucket_and_computes_the_same():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    reference = BertModel(config).eval()
    ours = bert.BertEncoder(bert.BertSettings.from_dict(config.to_dict())).eval()
    ours.load_state_dict(reference.state_dict())
    lengths = [5, 90, 3, 7, 96, 4, 6, 2, 88, 5, 1, 6, 4, 93, 5, 3]  # served requests: mostly short, a few long
    ids = torch.randint(1, 120, (len(lengths), max(lengths)))
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    packing = bert.Packing.of(mask)
    assert packing.buckets is not None and len(packing.buckets) > 1
    assert sorted(i for b in bert.attention_buckets(lengths) for i in b) == list(range(len(lengths)))
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    assert torch.allclose(got * mask[..., None], expected * mask[..., None], atol=1e-5)


def test_attention_buckets_split_only_when_padding_would_cost_more_than_another_attention_call():
    assert bert.attention_buckets([12, 14, 13, 12]) == [[0, 3, 2, 1]]  # similar lengths: one bucket, shortest first
    short_and_long = bert.attention_buckets([4] * 24 + [80] * 4)
    assert short_and_long == [list(range(24)), [24, 25, 26, 27]]


def test_only_plain_bert_configs_are_taken():
    assert bert.supports(BertConfig().to_dict())
    assert not bert.supports({**BertConfig().to_dict(), "position_embedding_type": "relative_key"})
    assert not bert.supports({"model_type": "distilbert"})


def test_a_saved_tokenizer_encodes_like_the_transformers_tokenizer(tmp_path):
    hf = AutoTokenizer.from_pretrained(str(catalog.locate("minilm-l6")))
    hf.add_tokens(["测试"])  # words added by extend_vocabulary travel in tokenizer.json too
    hf.save_pretrained(str(tmp_path))
    saved = SavedTokenizer(tmp_path, max_length=12)
    assert saved.encode(TEXTS) == hf(TEXTS, truncation=True, max_length=12)["input_ids"]
    assert saved.pad_token_id == hf.pad_token_id
