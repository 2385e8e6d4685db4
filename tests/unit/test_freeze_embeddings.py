import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel

from modelyard.learners.text import freeze_word_embeddings
from modelyard.models.catalog import locate


def _trainable(encoder) -> bool:
    return encoder.get_input_embeddings().weight.requires_grad


def test_a_vocabulary_that_is_most_of_the_model_is_frozen_unless_tokens_were_added():
    # multilingual-e5-small's shape, scaled down: a 250k-token matrix dwarfs two small layers
    config = BertConfig(
        vocab_size=250_037, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    assert freeze_word_embeddings(BertModel(config), None, added=0) is True
    encoder = BertModel(config)
    assert freeze_word_embeddings(encoder, None, added=5) is False and _trainable(encoder)


def test_minilm_keeps_training_its_embeddings_by_default_and_the_setting_wins():
    encoder = AutoModel.from_pretrained(str(locate("minilm-l6")))  # 11.7M of 22.7M parameters: about half
    assert freeze_word_embeddings(encoder, None, added=0) is False and _trainable(encoder)
    assert freeze_word_embeddings(encoder, True, added=0) is True and not _trainable(encoder)
    assert freeze_word_embeddings(encoder, False, added=0) is False and _trainable(encoder)


@pytest.mark.parametrize("setting", [True, False])
def test_a_frozen_matrix_gets_no_gradient_and_the_rest_does(setting):
    config = BertConfig(
        vocab_size=500, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    encoder = BertModel(config)
    freeze_word_embeddings(encoder, setting, added=0)
    encoder(input_ids=torch.tensor([[1, 2, 3]])).last_hidden_state.sum().backward()
    assert (encoder.get_input_embeddings().weight.grad is None) == setting
    assert encoder.encoder.layer[0].attention.self.query.weight.grad is not None


def test_layer_decay_slows_each_encoder_layer_below_the_top_and_the_embeddings_most():
    from types import SimpleNamespace

    from modelyard.learners.text import TextClassifierLearner, layers_below_top
    from modelyard.models.encoder_classifier import EncoderClassifier

    assert layers_below_top("encoder.encoder.layer.11.attention.self.query.weight", 12) == 0
    assert layers_below_top("encoder.encoder.layer.0.output.dense.bias", 12) == 11
    assert layers_below_top("encoder.embeddings.LayerNorm.weight", 12) == 12
    assert layers_below_top("head.weight", 12) == 0
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)
    module = EncoderClassifier(BertModel(config), 16, 2)
    spec = {"kind": "hf", "backbone": "local"}
    options = SimpleNamespace(head_lr_multiplier=20.0, layer_decay=0.5, head_init="random")
    learner = TextClassifierLearner(module, SimpleNamespace(pad_token_id=0), ["a", "b"], spec, options)
    rates = {id(p): g["lr"] for g in learner.param_groups(1e-4, 0.01) for p in g["params"]}
    named = dict(module.named_parameters())
    assert rates[id(named["head.weight"])] == pytest.approx(2e-3)
    assert rates[id(named["encoder.encoder.layer.2.output.dense.weight"])] == pytest.approx(1e-4)
    assert rates[id(named["encoder.encoder.layer.0.output.dense.weight"])] == pytest.approx(2.5e-5)
    assert rates[id(named["encoder.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-5)
