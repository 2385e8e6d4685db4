"""Token classification end to end with the bundled encoders: a tiny real training run (English with MiniLM,
Chinese character-wise with multilingual-e5-small), the bundle predicts spans whose offsets slice the input
exactly, the server answers with spans, validate reports repaired BIO and span problems."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from serving_helpers import serving

import modelyard
from modelyard.api import validate
from modelyard.errors import DataError

NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito"]
ZH_NAMES = ["张伟", "王芳", "李娜", "刘洋"]
ZH_CITIES = ["北京", "上海", "广州", "成都"]


def english_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        text = f"{name} flew to {city} today ."
        rows.append(
            {
                "text": text,
                "entities": [
                    {"start": 0, "end": len(name), "label": "PER"},
                    {"start": text.index(city), "end": text.index(city) + len(city), "label": "LOC"},
                ],
            }
        )
    return rows


def chinese_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name, city = rng.choice(ZH_NAMES), rng.choice(ZH_CITIES)
        text = f"昨天{name}去了{city}。"
        rows.append(
            {"text": text, "entities": [{"start": 2, "end": 4, "label": "PER"}, {"start": 6, "end": 8, "label": "LOC"}]}
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def tiny_config(folder: Path, rows, backbone: str, **train) -> Path:
    config = {
        "name": f"entities-{backbone}",
        "task": "token_classification",
        "data": {
            "train": write_jsonl(folder / "train.jsonl", rows(48, 0)),
            "validation": write_jsonl(folder / "validation.jsonl", rows(8, 1)),
            "test": write_jsonl(folder / "test.jsonl", rows(8, 2)),
        },
        "model": {"backbone": backbone},
        "train": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-4, "early_stopping": None, **train},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def english_bundle(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("entities-en")
    return modelyard.train(tiny_config(folder, english_rows, "auto"), output=folder / "b", quiet=True, track=False)


def assert_spans_slice(text: str, answer: dict) -> list[tuple[str, str]]:
    for span in answer["entities"]:
        assert text[span["start"] : span["end"]] == span["text"]
        assert 0.0 < span["score"] <= 1.0
    return [(s["label"], s["text"]) for s in answer["entities"]]


@pytest.mark.slow
def test_training_writes_entity_f1_beside_the_baseline_and_predicts_exact_spans(english_bundle):
    metrics = json.loads((english_bundle.path / "metrics.json").read_text())
    assert english_bundle.manifest["backbone"] == "minilm-l6"
    assert set(metrics["test"]["per_type"]) == {"PER", "LOC"}
    assert "entity_f1" in metrics["baselines"]["most_frequent_tag"]["test"]
    assert metrics["test"]["entity_f1"] >= 0.9
    text = "Yesterday   Carol flew to Oslo again"  # unseen layout, extra spaces: offsets must still be exact
    found = assert_spans_slice(text, english_bundle.predict([text])[0])
    assert ("PER", "Carol") in found and ("LOC", "Oslo") in found


@pytest.mark.slow
def test_the_reloaded_bundle_answers_the_same_and_the_server_returns_spans(english_bundle):
    text = "Dave flew to Lima today ."
    expected = english_bundle.predict([text])[0]
    assert modelyard.load(english_bundle.path).predict([text])[0] == expected
    with serving(english_bundle.path) as client:
        info = client.get("/v1/model").json()
        response = client.post("/v1/predict", json={"inputs": [text, "no entities at all"]})
    assert info["task"] == "token_classification" and info["labels"] == ["LOC", "PER"]
    assert response.status_code == 200
    served = response.json()["predictions"]
    assert served[0] == expected and assert_spans_slice(text, served[0]) == [("PER", "Dave"), ("LOC", "Lima")]


@pytest.mark.slow
def test_chinese_is_tagged_character_by_character(tmp_path):
    config = tiny_config(tmp_path, chinese_rows, "auto", epochs=10)
    model = modelyard.train(config, output=tmp_path / "b", quiet=True, track=False)
    assert model.manifest["backbone"] == "multilingual-e5-small"
    text = "前天李娜去了广州。"  # no spaces: each character is a word, spans end between characters
    answer = model.predict([text])[0]
    assert_spans_slice(text, answer)
    spans = [(s["start"], s["end"], s["label"]) for s in answer["entities"]]
    assert (2, 4, "PER") in spans  # a two-character name cut out of an unspaced run, to the character
    assert any(label == "LOC" and 6 <= start < end <= 8 for start, end, label in spans)


def test_validate_reports_repaired_bio_and_refuses_overlapping_spans(tmp_path):
    conll = tmp_path / "train.conll"
    conll.write_text("Ada\tI-PER\nwrote\tO\n\nin\tO\nParis\tB-LOC\n\nBob\tB-PER\n", encoding="utf-8")
    config = {"name": "v", "task": "token_classification", "data": {"train": str(conll)}, "model": {}}
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({**config, "data": {**config["data"], "split": {"validation": 0.0, "test": 0.0}}})
    )
    data = validate(tmp_path / "c.yaml")
    assert any(f"{conll}:1 ('I-PER' after a different tag)" in w for w in data.warnings)
    assert data.report["entity_types"]["train"] == {"LOC": 1, "PER": 2}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text": "New York", "entities": [{"start": 0, "end": 8, "label": "LOC"}, '
        '{"start": 4, "end": 8, "label": "LOC"}]}\n',
        encoding="utf-8",
    )
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({**config, "data": {"train": str(bad)}}))
    with pytest.raises(DataError, match=rf"{bad}:1: entities 'New York' \(0-8\) and 'York' \(4-8\) overlap"):
        validate(tmp_path / "d.yaml")
