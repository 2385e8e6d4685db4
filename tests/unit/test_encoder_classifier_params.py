"""Every trainable parameter of a text classifier takes part in its loss (what DDP needs), and bundles saved
while the classifier still kept the unused BERT pooler load."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

from modelyard.models import bert
from modelyard.models.encoder_classifier import EncoderClassifier

SIZES = {
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
}


def test_every_trainable_parameter_of_a_bert_classifier_gets_a_gradient():
    torch.manual_seed(0)
    classifier = EncoderClassifier(BertModel(BertConfig(**SIZES)), 16, 3)
    ids = torch.randint(1, 50, (4, 7))
    mask = torch.ones_like(ids)
    mask[0, 4:] = 0
    torch.nn.functional.cross_entropy(classifier(ids, mask), torch.tensor([0, 1, 2, 0])).backward()
    unused = [n for n, p in classifier.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


def test_a_state_dict_saved_with_the_pooler_loads_into_the_plain_bert_classifier():
    torch.manual_seed(0)
    old = EncoderClassifier(BertModel(BertConfig(**SIZES)), 16, 3)
    saved = dict(old.state_dict())
    saved["encoder.pooler.dense.weight"] = torch.zeros(16, 16)
    saved["encoder.pooler.dense.bias"] = torch.zeros(16)
    encoder = bert.BertEncoder(bert.BertSettings.from_dict({"model_type": "bert", **SIZES}))
    plain = EncoderClassifier(encoder, 16, 3)
    plain.load_state_dict(saved)  # strict: nothing else missing or unexpected
    ids, mask = torch.randint(1, 50, (2, 5)), torch.ones(2, 5, dtype=torch.long)
    torch.testing.assert_close(plain.eval()(ids, mask), old.eval()(ids, mask), atol=1e-5, rtol=1e-4)
