"""Continued masked-LM pretraining before fine-tuning (model.domain_pretraining) and the notes on user settings."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

import modelyard
from modelyard.config import TrainConfig
from modelyard.errors import ConfigError, DataError
from modelyard.learners import domain_pretraining
from modelyard.learners.text_recipe import settings_notes
from modelyard.models.catalog import locate
from modelyard.tasks import get_task, load_config

BANKING = Path(__file__).parents[2] / "examples" / "data" / "banking77"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
QUERY = "encoder.layer.0.attention.self.query.weight"


def _config(folder: Path, backbone: str = "minilm-l6", **pretraining) -> Path:
    """4 BANKING77 intents, 12 rows each, a test file, and unlabelled texts of other intents (one a test text)."""
    train, test = pd.read_csv(BANKING / "train.csv"), pd.read_csv(BANKING / "test.csv")
    intents = sorted(train["category"].unique())[:4]
    train[train["category"].isin(intents)].groupby("category").head(12).to_csv(folder / "train.csv", index=False)
    held_out = test[test["category"].isin(intents)].groupby("category").head(3)
    held_out.to_csv(folder / "test.csv", index=False)
    extra = [*train[~train["category"].isin(intents)]["text"][:40], held_out["text"].iloc[0]]
    (folder / "extra.txt").write_text("\n".join(extra) + "\n", encoding="utf-8")
    config = {
        "name": "dapt",
        "task": "text_classification",
        "data": {"train": "train.csv", "test": "test.csv", "label_column": "category"},
        "model": {
            "backbone": backbone,
            "freeze_embeddings": True,
            "domain_pretraining": {"texts": "extra.txt", "steps": 2, "batch_size": 8, "max_length": 16, **pretraining},
        },
        "train": {"max_steps": 1, "batch_size": 8, "early_stopping": None},
    }
    (folder / "dapt.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder / "dapt.yaml"


def test_masked_lm_adapts_the_encoder_keeps_frozen_embeddings_and_is_cached(tmp_path):
    config = load_config(_config(tmp_path))
    data = get_task("text_classification").prepare(config)
    original = locate("minilm-l6")
    torch.manual_seed(0)
    folder = domain_pretraining.encoder_for(original, "minilm-l6", config, data)
    after_computing = torch.rand(3)
    record = data.report["domain_pretraining"]  # what train copies into metrics.json
    assert record["steps"] == 2 and record["cached"] is False and record["frozen_embeddings"] is True
    assert record["texts"] == len(data.splits["train"]) + 40  # the test text among the extra ones is left out
    assert record["extra_texts_dropped_as_held_out"] == 1
    assert math.isfinite(record["loss_last"]) and record["loss_first"] > 0 and len(record["loss_curve"]) == 2
    assert 0 < record["output_vocabulary"] < 30522  # the head scored the texts' own tokens, not all of BERT's
    adapted, before = load_file(folder / "model.safetensors"), load_file(original / "model.safetensors")
    assert not adapted[QUERY].equal(before[QUERY])  # the encoder learned from the masked texts
    assert adapted[WORD_EMBEDDINGS].equal(before[WORD_EMBEDDINGS])  # freeze_embeddings held during pretraining
    assert set(adapted) == set(before)  # a complete drop-in for the original folder (its pooler kept)

    torch.manual_seed(0)
    assert domain_pretraining.encoder_for(original, "minilm-l6", config, data) == folder
    assert data.report["domain_pretraining"]["cached"] is True  # same backbone, texts and settings: reused
    assert torch.rand(3).equal(after_computing)  # fine-tuning draws the same head either way


def test_validate_names_the_texts_file_and_column_and_refuses_what_train_could_not_honour(tmp_path):
    path = _config(tmp_path, texts="extra.csv", text_column="review")
    pd.DataFrame({"body": ["a text"]}).to_csv(tmp_path / "extra.csv", index=False)
    with pytest.raises(DataError, match=r"domain_pretraining.texts .*extra\.csv: no column 'review'"):
        modelyard.validate(path)
    with pytest.raises(DataError, match=r"missing\.txt: file not found") as missing:
        modelyard.validate(_config(tmp_path, texts="missing.txt"))
    assert missing.value.hint == "check model.domain_pretraining.texts in the config"
    with pytest.raises(ConfigError, match="nothing to pretrain"):
        modelyard.validate(_config(tmp_path, backbone="tfidf-linear"))
    with pytest.raises(ConfigError, match="domain_pretraining learns from the texts without noise"):
        modelyard.validate(_config(tmp_path), ["train.privacy.epsilon=8", "train.privacy.delta=1e-3"])


def test_far_off_learning_rates_and_epochs_are_used_as_set_but_said_why_in_the_data_report(tmp_path):
    notes = settings_notes("multilingual-e5-small", TrainConfig(learning_rate=1e-3, epochs=20))
    assert len(notes) == 2
    assert "1e-3" not in notes[0] and "0.001 is far above" in notes[0] and "used as set" in notes[0]
    assert "train.epochs 20 is far above" in notes[1] and "patience 2" in notes[1]
    assert settings_notes("minilm-l6", TrainConfig(learning_rate=5e-5, epochs=4)) == []  # issue 21's held-out runs
    assert settings_notes("minilm-l6", TrainConfig()) == []  # tuned defaults
    assert "far below" in settings_notes("/some/local-bert", TrainConfig(learning_rate=1e-6))[0]
    path = _config(tmp_path)
    data = modelyard.validate(path, ["train.learning_rate=0.002", "model.domain_pretraining=null"])
    assert any("train.learning_rate 0.002 is far above" in w for w in data.warnings)


def test_the_corpus_vocabulary_head_keeps_the_full_heads_odds_between_the_texts_tokens():
    from transformers import AutoTokenizer

    original = locate("minilm-l6")
    model, head = domain_pretraining._masked_lm(original)
    model.eval()
    ids = AutoTokenizer.from_pretrained(str(original))(["my card was declined", "top up failed"])["input_ids"]
    hidden = torch.randn(5, model.config.hidden_size)
    with torch.no_grad():
        full = head(hidden)
        remap = domain_pretraining.restrict_to_corpus(model, head, ids)
        cut = head(hidden)
    kept = sorted({i for row in ids for i in row})
    assert cut.shape == (5, len(kept)) and remap[kept].tolist() == list(range(len(kept)))
    assert (remap >= 0).sum() == len(kept)  # every other token maps to no column
    torch.testing.assert_close(cut, full[:, kept])  # the same logits, so the same odds between those tokens


def test_every_step_masks_a_token_so_a_tiny_mask_probability_still_trains_and_reports_finite_losses(tmp_path):
    config = load_config(_config(tmp_path, mlm_probability=0.001, batch_size=2, steps=3))
    data = get_task("text_classification").prepare(config)
    original = locate("minilm-l6")
    folder = domain_pretraining.encoder_for(original, "minilm-l6", config, data)
    record = data.report["domain_pretraining"]
    assert record["steps_trained"] == 3
    assert all(math.isfinite(x) for x in (record["loss_first"], record["loss_last"]))  # no NaN in metrics.json
    adapted, before = load_file(folder / "model.safetensors"), load_file(original / "model.safetensors")
    assert not adapted[QUERY].equal(before[QUERY])  # what the cache holds was trained, not the original


def test_a_batch_the_collator_left_unmasked_gets_one_masked_ordinary_token():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(locate("minilm-l6")))
    batch = tokenizer(["top up failed", "my card"], padding=True, return_tensors="pt")
    ordinary = batch["input_ids"].clone()
    batch["labels"] = torch.full_like(ordinary, -100)
    assert domain_pretraining.mask_at_least_one(batch, tokenizer)
    (row, position), *others = (batch["labels"] != -100).nonzero().tolist()
    assert others == [] and batch["labels"][row, position] == ordinary[row, position]
    assert batch["input_ids"][row, position] == tokenizer.mask_token_id
    assert ordinary[row, position] not in tokenizer.all_special_ids and batch["attention_mask"][row, position] == 1
    only_special = {"input_ids": torch.tensor([[101, 102]]), "attention_mask": torch.ones(1, 2, dtype=torch.long)}
    assert not domain_pretraining.mask_at_least_one({**only_special, "labels": torch.full((1, 2), -100)}, tokenizer)


def test_the_extra_texts_are_read_with_the_datas_format_options(tmp_path):
    pd.DataFrame({"review": ["酒店很干净", "服务态度差"]}).to_csv(tmp_path / "zh.csv", index=False, encoding="gb18030")
    path = _config(tmp_path, texts="zh.csv", text_column="review")
    with pytest.raises(DataError, match=r"zh\.csv.*not valid utf-8"):
        modelyard.validate(path)
    data = modelyard.validate(path, ["data.format.encoding=gb18030"])  # the ASCII training files read alike
    assert data.report["domain_pretraining"]["extra_texts"] == 2
