"""A model trained in bf16 and exported as int8 PyTorch runs its int8 kernels on fp32 activations once loaded."""

from __future__ import annotations

import json

import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from modelyard.learners.token_tagger import SPEC_FILE, TokenTaggerLearner
from modelyard.models import bert
from modelyard.models.token_tagger import TokenTagger
from modelyard.runtimes.torch_int8 import quantize_module, save_quantized

WORDS = ["[PAD]", "[UNK]", "paris", "is", "in", "france"]


def tiny_tagger(precision: str) -> TokenTaggerLearner:
    torch.manual_seed(0)
    settings = bert.BertSettings(len(WORDS), 16, 1, 2, 32, 32, raw={"model_type": "bert"})
    tags = ["O", "B-loc", "I-loc"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    spec = {"backbone": "tiny-bert", "tags": tags, "dropout": 0.0, "pad_id": 0, "blank_id": None, "max_length": 16}
    learner = TokenTaggerLearner(TokenTagger(bert.BertEncoder(settings), 16, len(tags), 0.0), tokenizer, spec)
    learner.precision = precision
    return learner


def test_an_int8_export_of_a_token_tagger_trained_in_bf16_predicts_in_fp32(tmp_path):
    trained = tiny_tagger("bf16")
    trained.save(tmp_path)
    save_quantized(quantize_module(trained.module).eval(), tmp_path / "model.safetensors")
    spec = json.loads((tmp_path / SPEC_FILE).read_text(encoding="utf-8"))
    assert spec["precision"] == "bf16"

    loaded = TokenTaggerLearner.load(tmp_path, spec)

    assert loaded.precision == "fp32"
    assert len(loaded.predict(["paris is in france"])) == 1
