from transformers import AutoModel, AutoTokenizer

from modelyard.learners.text_inputs import extend_vocabulary
from modelyard.models.catalog import locate


def test_characters_an_english_tokenizer_does_not_know_become_trainable_tokens():
    path = str(locate("minilm-l6"))
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    texts = ["味道很好，送餐很快", "送餐太慢了，味道一般", "很好吃 good"] * 2
    before = tokenizer(texts[0])["input_ids"].count(tokenizer.unk_token_id)
    added = extend_vocabulary(tokenizer, encoder, texts, limit=1000)
    assert before > 0 and added > 0
    assert tokenizer(texts[0])["input_ids"].count(tokenizer.unk_token_id) == 0
    assert encoder.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert tokenizer.tokenize("good") == ["good"]
