import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel

from modelyard.models.catalog import locate
from modelyard.models.text_learner import freeze_word_embeddings


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
