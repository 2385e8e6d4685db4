"""Multi-label classification end to end on a tiny real slice of GoEmotions (examples/data/goemotions): train ->
bundle -> predict / serve / report / ONNX export, with TF-IDF (fast) and MiniLM through the shared loop."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from serving_helpers import serving

import modelyard
from modelyard.export.exporter import export
from modelyard.loader import load

SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "goemotions"
HEADLINE = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "per_label")


def _config(folder: Path, backbone: str, rows: tuple[int, int, int], train: dict | None = None, **model) -> Path:
    for name, n in zip(("train", "validation", "test"), rows, strict=True):
        pd.read_csv(SLICE / f"{name}.csv").head(n).to_csv(folder / f"{name}.csv", index=False)
    config = {
        "name": f"ml-{backbone}",
        "task": "multilabel_classification",
        "data": {"train": "train.csv", "validation": "validation.csv", "test": "test.csv", "label_column": "labels"},
        "model": {"backbone": backbone, **model},
        "train": {"epochs": 1, "batch_size": 16, **(train or {})},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _check_bundle(model: modelyard.Model) -> None:
    """Thresholds per label saved, metrics and the TF-IDF baseline in metrics.json, answers as label sets."""
    saved = json.loads((model.path / "thresholds.json").read_text())
    assert list(saved["thresholds"]) == model.labels
    assert len(set(saved["thresholds"].values())) > 1  # tuned per label, not one value for all
    metrics = json.loads((model.path / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert all(k in metrics[split] for k in HEADLINE)
    assert set(metrics["test"]["per_label"]) == set(model.labels)
    baseline = metrics["baselines"]["tfidf_logreg"]["test"]
    assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(baseline)
    answers = model.predict(["Thank you so much, I love it!", "Why would anyone do that?"], top_k=3)
    for answer in answers:
        assert answer["labels"], "every training row had a label: an answer has at least one"
        for item in answer["labels"]:
            assert item["score"] >= item["threshold"] or len(answer["labels"]) == 1
            assert item["threshold"] == pytest.approx(saved["thresholds"][item["label"]], abs=1e-4)
        assert answer["label"] == "|".join(sorted(x["label"] for x in answer["labels"]))
        assert len(answer["probabilities"]) == 3


def test_tfidf_multilabel_bundle_predicts_label_sets_with_per_label_thresholds(tmp_path):
    config = _config(tmp_path, "tfidf-linear", (1200, 300, 200))
    model = modelyard.train(config, output=tmp_path / "bundle", quiet=True, track=False)
    _check_bundle(model)
    assert load(model.path).predict(["thanks!"]) == model.predict(["thanks!"])


def test_evaluate_holds_a_file_to_no_training_check_and_names_labels_the_model_never_saw(tmp_path):
    config = _config(tmp_path, "tfidf-linear", (600, 150, 100))
    model = modelyard.train(config, output=tmp_path / "b", quiet=True, track=False)
    test = pd.read_csv(SLICE / "test.csv")
    varied = test.head(20).assign(labels=lambda f: f["labels"].where(f.index != 0, "brandnew"))
    varied.to_csv(tmp_path / "varied.csv", index=False)
    scored = model.evaluate(tmp_path / "varied.csv")  # 20 rows of many labels: not "free text"
    assert scored["samples"] == 19
    assert scored["notes"] == [
        f"{tmp_path / 'varied.csv'}: labels the model never saw removed from its rows (brandnew); "
        "1 rows left with no label dropped"
    ]
    test.head(5).assign(labels="gratitude").to_csv(tmp_path / "one.csv", index=False)
    assert model.evaluate(tmp_path / "one.csv")["samples"] == 5  # one label is a fine thing to score


@pytest.fixture(scope="module")
def minilm_bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("minilm")
    # fp32: the parity check compares with fp32 ONNX; bf16 scores sit close enough to a barely trained model's
    # thresholds to flip a few label sets (96% agreement measured), which would test bf16, not the export
    config = _config(folder, "minilm-l6", (160, 80, 60), train={"precision": "fp32"}, max_length=32)
    return modelyard.train(config, output=folder / "bundle", quiet=True, track=False).path


@pytest.mark.slow
def test_minilm_multilabel_bundle_is_trained_with_sigmoid_scores_and_tuned_thresholds(minilm_bundle):
    model = load(minilm_bundle)
    _check_bundle(model)
    scores = model.learner.predict_proba(["Thank you so much!"])
    assert scores.shape == (1, len(model.labels)) and abs(scores.sum() - 1.0) > 1e-3  # sigmoids, not a softmax
    history = [json.loads(x) for x in (minilm_bundle / "history.jsonl").read_text().splitlines()]
    assert "micro_f1" in history[-1]["validation"]


@pytest.mark.slow
def test_explain_scores_a_label_with_the_sigmoid_predict_answers_with(minilm_bundle):
    from modelyard.evaluation.explain import explain

    model = load(minilm_bundle)
    text = "Thank you so much, I love it!"
    scores = dict(zip(model.labels, model.learner.predict_proba([text])[0], strict=True))
    best = explain(model, text)
    assert best["score"] == pytest.approx(max(scores.values()), abs=1e-4) and best["label"] == max(
        scores, key=scores.get
    )
    weakest = min(scores, key=scores.get)
    chosen = explain(model, text, weakest)
    assert chosen["label"] == weakest and chosen["score"] == pytest.approx(scores[weakest], abs=1e-4)
    gap = chosen["output"] - chosen["baseline_output"]
    assert sum(chosen["attributions"]) == pytest.approx(gap, abs=max(0.05 * abs(gap), chosen["convergence_delta"]))


@pytest.mark.slow
def test_the_server_answers_every_label_above_its_threshold(minilm_bundle):
    with serving(minilm_bundle) as client:
        response = client.post("/v1/predict", json={"inputs": ["Thanks a lot, that is great news!"], "top_k": 2})
        info = client.get("/v1/model").json()
    assert response.status_code == 200, response.text
    answer = response.json()["predictions"][0]
    assert answer["labels"] and all({"label", "score", "threshold"} <= set(x) for x in answer["labels"])
    assert info["task"] == "multilabel_classification"
    assert {x["label"] for x in answer["labels"]} <= set(info["labels"])


@pytest.mark.slow
def test_onnx_export_keeps_the_label_sets(minilm_bundle, tmp_path):
    result = export(minilm_bundle, output=tmp_path / "onnx", latency_samples=5)
    assert result.passed and result.report["parity"]["agreement"] >= 0.98
    exported = load(result.path)
    texts = ["Thank you so much!", "This is so annoying", "I wonder why"]
    new, old = exported.predict(texts), load(minilm_bundle).predict(texts)
    assert [a["label"] for a in new] == [a["label"] for a in old]
    for a, b in zip(new, old, strict=True):
        assert [x["score"] for x in a["labels"]] == pytest.approx([x["score"] for x in b["labels"]], abs=1e-4)


@pytest.mark.slow
def test_the_report_shows_per_label_results_and_thresholds(minilm_bundle):
    from modelyard.evaluation.report import render

    html = render(load(minilm_bundle))
    assert "Per-label results" in html and "threshold" in html and "Largest mistakes" in html


@pytest.mark.slow
def test_a_probe_initialised_head_scores_labels_before_any_fine_tuning(tmp_path):
    from modelyard.tasks import get_task, load_config

    config = load_config(_config(tmp_path, "minilm-l6", (200, 40, 20), head_init="linear_probe", max_length=32))
    task = get_task(config.task)
    data = task.prepare(config)
    learner = task.build(config, data)  # the probe is fitted here, before the loop runs a single step
    train = data.splits["train"]
    y = learner.targets(train)
    scores = learner.predict_proba(train["text"].tolist())
    positive, negative = scores[y == 1].mean(), scores[y == 0].mean()
    assert positive > 2 * negative  # a random head scores both alike
