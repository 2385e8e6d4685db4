"""Text generation end to end: train from scratch, bundle, load, generate; Chinese poems; chat data."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

import modelyard
from modelyard.data import text_corpus
from modelyard.errors import DataError
from modelyard.tasks import get_task, load_config

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def test_a_tiny_gpt_trains_to_a_finite_perplexity_and_its_bundle_holds_the_tokenizer(tiny_gpt_bundle):
    metrics = json.loads((tiny_gpt_bundle / "metrics.json").read_text())
    assert math.isfinite(metrics["validation"]["perplexity"]) and metrics["test"]["perplexity"] > 1
    assert metrics["validation"]["loss"] < math.log(70)  # better than uniform over the ~65-character vocabulary
    assert (tiny_gpt_bundle / "tokenizer.json").is_file() and (tiny_gpt_bundle / "model.safetensors").is_file()


def test_a_loaded_gpt_bundle_generates_and_predicts_continuations(tiny_gpt_bundle):
    model = modelyard.load(tiny_gpt_bundle)
    text = model.learner.generate("ROMEO:", max_new_tokens=15, temperature=0)
    assert isinstance(text, str) and 0 < len(text) <= 15
    assert model.learner.generate("ROMEO:", max_new_tokens=15, temperature=0) == text  # greedy is deterministic
    (prediction,) = model.predict(["KING:"])
    assert prediction["completion_tokens"] <= 12 and prediction["finish_reason"] in ("length", "stop")


def test_streaming_yields_the_same_text_piece_by_piece(tiny_gpt_bundle):
    learner = modelyard.load(tiny_gpt_bundle).learner
    pieces = list(learner.generate_stream("To be", max_new_tokens=10, seed=3))
    assert len(pieces) > 1 and "".join(pieces) == learner.generate("To be", max_new_tokens=10, seed=3)


def test_tang_poems_read_as_chinese_documents_split_in_contiguous_blocks(tmp_path):
    config = {
        "name": "poems",
        "task": "text_generation",
        "data": {
            "train": str(EXAMPLES_DIR / "data" / "tang_poems"),
            "text_field": "paragraphs",
            "split": {"validation": 0.1, "test": 0.1},
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    data = get_task("text_generation").prepare(load_config(tmp_path / "c.yaml"))
    assert data.report["kind"] == "corpus"
    train, test = data.splits["train"], data.splits["test"]
    assert "，" in train[0] and "\n" in train[0]
    assert data.report["splits"] == {"train": 1092, "validation": 137, "test": 137}  # 1,366 poems
    poems = json.loads((EXAMPLES_DIR / "data" / "tang_poems" / "tang300.json").read_text(encoding="utf-8"))
    assert test[-1] == "\n".join(poems[-1]["paragraphs"])  # the last file's last poem closes the test block


def test_prompt_completion_rows_become_chat_examples(tmp_path):
    path = tmp_path / "pc.jsonl"
    path.write_text('{"prompt": "2+2?", "completion": "4"}\n', encoding="utf-8")
    (item,) = text_corpus.read(path, text_corpus.Fields())
    assert item == {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}


def test_max_rows_of_a_plain_text_corpus_keeps_its_first_lines(tmp_path):
    (tmp_path / "corpus.txt").write_text("".join(f"line {n}\n" for n in range(10)), encoding="utf-8")
    (text,) = text_corpus.read(tmp_path / "corpus.txt", text_corpus.Fields(), max_rows=3)
    assert text == "line 0\nline 1\nline 2\n"


def test_a_chat_example_without_an_answer_is_refused_with_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1: no assistant message"):
        text_corpus.read(path, text_corpus.Fields())


def test_the_report_puts_bootstrap_intervals_on_test_loss_and_perplexity(tiny_gpt_bundle, tmp_path, monkeypatch):
    from modelyard.evaluation.report import write_report
    from modelyard.metrics import cost

    model = modelyard.load(tiny_gpt_bundle)
    sums, counts = model.learner.unit_losses(model.task.prepare(model.config).splits["test"])
    test = json.loads((tiny_gpt_bundle / "metrics.json").read_text())["test"]
    assert math.isclose(sums.sum() / counts.sum(), test["loss"], abs_tol=1e-4)
    monkeypatch.setattr(cost, "TIME_BUDGET_S", 0.5)
    html = write_report(tiny_gpt_bundle, tmp_path / "report.html").read_text(encoding="utf-8")
    low, high = (float(x) for x in re.search(r"<td>test</td><td>[\d.]+ \[([\d.]+), ([\d.]+)\]</td>", html).groups())
    assert low <= test["loss"] <= high
    assert "percentile bootstrap over the" in html


def test_the_model_card_gives_the_test_loss_with_its_interval(tiny_gpt_bundle):
    saved = json.loads((tiny_gpt_bundle / "metrics.json").read_text())["test_intervals"]
    card = (tiny_gpt_bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert saved["loss"]["low"] <= saved["loss"]["value"] <= saved["loss"]["high"]
    assert f"[{saved['loss']['low']:.4f}, {saved['loss']['high']:.4f}]" in card


def test_feedback_on_a_scratch_generator_is_refused_naming_the_models_that_take_it(tiny_gpt_bundle):
    from serving_helpers import serving

    with serving(tiny_gpt_bundle) as client:
        answer = client.post("/v1/predict", json={"inputs": ["ROMEO:"]}).json()
        labelled = client.post("/v1/feedback", json={"prediction_id": answer["prediction_ids"][0], "label": "x"})
        rated = client.post("/v1/feedback", json={"prediction_id": answer["prediction_ids"][0], "rating": "up"})
        unknown = client.post("/v1/feedback", json={"prediction_id": "nope", "label": "x"})
    assert labelled.status_code == 422 and "pretrained chat models" in labelled.json()["error"]["message"]
    assert rated.status_code == 422
    assert unknown.status_code == 404
