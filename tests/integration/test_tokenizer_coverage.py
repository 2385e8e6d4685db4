"""validate warns when the encoder a config names cannot read the training texts (English MiniLM on Chinese)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from modelyard.api import validate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = ("送餐很快，味道不错", "太难吃了，再也不点", "包装很好，分量足", "等了两个小时，饭都凉了")
REVIEWS = [f"{text}（第{n}单）" for n in range(5) for text in KINDS]


def _config(folder: Path, backbone: str) -> Path:
    frame = pd.DataFrame({"text": REVIEWS, "label": ["好评", "差评", "好评", "差评"] * 5})
    frame.to_csv(folder / "reviews.csv", index=False)
    data = {"train": "reviews.csv"}
    raw = {"name": "zh", "task": "text_classification", "data": data, "model": {"backbone": backbone}}
    (folder / f"{backbone}.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder / f"{backbone}.yaml"


def _coverage_warnings(data) -> list[str]:
    return [w for w in data.warnings if "unknown token" in w]


def test_a_named_english_encoder_on_chinese_reviews_is_warned_about(tmp_path):
    [warning] = _coverage_warnings(validate(_config(tmp_path, "minilm-l6")))
    assert warning.startswith("minilm-l6's tokenizer maps") and "multilingual-e5-small" in warning


def test_auto_which_chooses_by_coverage_needs_no_warning(tmp_path):
    data = validate(_config(tmp_path, "auto"))
    assert _coverage_warnings(data) == [] and data.report["tokenizer"]["name"] == "multilingual-e5-small"


def test_entity_extraction_with_an_english_encoder_on_chinese_is_warned_about():
    config = EXAMPLES / "uner_zh_entities.yaml"
    [warning] = _coverage_warnings(validate(config, ["model.backbone=minilm-l6", "data.max_rows=50"]))
    assert warning.startswith("minilm-l6's tokenizer maps")
