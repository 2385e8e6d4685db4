"""Token classification end to end with the bundled encoders: a tiny real training run (English with MiniLM,
Chinese character-wise with multilingual-e5-small), the bundle predicts spans whose offsets slice the input
exactly, the server answers with spans, validate reports repaired BIO and span problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from entity_helpers import chinese_rows, tiny_config, write_jsonl
from serving_helpers import serving

import modelyard
from modelyard.api import validate
from modelyard.errors import DataError


@pytest.fixture(scope="module")
def english_bundle(entity_bundle) -> modelyard.Model:
    return entity_bundle


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
def test_a_text_longer_than_max_length_is_tagged_to_its_end_in_overlapping_windows(english_bundle):
    learner = modelyard.load(english_bundle.path).learner
    learner.spec["max_length"] = 12  # ten words of text per window: the sentence below takes several
    text = "Dave flew to Lima today . " * 4 + "Erin flew to Oslo today ."
    ids, firsts = learner._encode([text], learner._untruncated)[0]
    windows, where = learner._windows(ids, firsts)
    assert len(windows) > 2 and all(len(w) <= 12 for w in windows)
    assert [windows[w][pos] for w, pos in where] == [ids[first] for first in firsts]  # each word's own token
    found = assert_spans_slice(text, learner.predict([text])[0])
    assert found[-2:] == [("PER", "Erin"), ("LOC", "Oslo")] and len(found) == 10


@pytest.mark.slow
def test_evaluate_scores_a_file_without_entities_and_names_types_the_model_never_learnt(english_bundle, tmp_path):
    write_jsonl(tmp_path / "none.jsonl", [{"text": "nothing to see here today .", "entities": []}] * 3)
    scored = english_bundle.evaluate(tmp_path / "none.jsonl")  # training would refuse it: no entities
    assert scored["sentences"] == 3 and scored["entities"] == 0 and scored["token_accuracy"] == 1.0
    text = "Maria flew to Oslo on Acme Air ."
    spans = [{"start": 0, "end": 5, "label": "PER"}, {"start": 22, "end": 30, "label": "ORG"}]
    write_jsonl(tmp_path / "org.jsonl", [{"text": text, "entities": spans}])
    notes = english_bundle.evaluate(tmp_path / "org.jsonl")["notes"]
    assert notes == [f"{tmp_path / 'org.jsonl'}: entity types the model never learnt count as misses (ORG)"]


def test_chinese_is_tagged_character_by_character(tmp_path):
    config = tiny_config(tmp_path, chinese_rows, "auto", epochs=5)
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


@pytest.mark.slow
def test_onnx_export_keeps_the_entities_and_the_int8_export_is_checked_entity_by_entity(english_bundle, tmp_path):
    from modelyard.export.exporter import export

    onnx = export(english_bundle.path, "onnx", output=tmp_path / "onnx", latency_samples=1)
    assert onnx.passed and onnx.report["accuracy"]["metric"] == "entity_f1"
    assert onnx.report["parity"]["agreement"] == 1.0 and onnx.report["parity"]["entities"] > 0
    assert onnx.report["parity"]["max_abs_diff"] < 1e-4  # the reference computes in fp32 too, not bf16
    assert onnx.report["reference_precision"]["compared"] == "fp32"
    exported = modelyard.load(onnx.path)
    assert exported.manifest["runtime"] == "onnxruntime"
    text = "Erin flew to Quito today ."
    spans = [(s["start"], s["end"], s["label"]) for s in exported.predict([text])[0]["entities"]]
    assert spans == [(s["start"], s["end"], s["label"]) for s in english_bundle.predict([text])[0]["entities"]]
    int8 = export(english_bundle.path, "onnx", quantize="int8", output=tmp_path / "int8", latency_samples=1)
    assert int8.report["quantize"] == "dynamic-int8" and int8.passed
    assert int8.report["size_mb"]["exported"] < 0.5 * int8.report["size_mb"]["original"]
    assert int8.report["accuracy"]["exported"] >= int8.report["accuracy"]["original"] - 0.01


@pytest.mark.slow
def test_explain_attributes_a_predicted_entity_to_the_tokens_of_the_text(english_bundle):
    from modelyard.evaluation.explain import explain

    text = "Dave flew to Lima today ."
    person = explain(english_bundle, text)
    assert person["entity"]["text"] == "Dave" and person["label"] == "PER"
    assert person["tokens"][0] == "dave" and len(person["tokens"]) == len(person["attributions"])
    assert max(range(len(person["tokens"])), key=person["attributions"].__getitem__) == 0  # the name itself
    gap = person["output"] - person["baseline_output"]
    assert sum(person["attributions"]) == pytest.approx(gap, abs=max(0.05 * abs(gap), person["convergence_delta"]))
    with serving(english_bundle.path) as client:
        place = client.post("/v1/explain", json={"input": text, "label": "LOC"})
        missing = client.post("/v1/explain", json={"input": "no one went anywhere", "label": "PER"})
    assert place.status_code == 200 and place.json()["entity"]["text"] == "Lima"
    assert missing.status_code == 422 and "no PER entity found" in missing.json()["error"]["message"]


@pytest.mark.slow
def test_explain_reads_an_entity_past_max_length_in_the_window_prediction_tagged_it_in(english_bundle):
    from modelyard.learners.token_explain import explain_entity

    learner = modelyard.load(english_bundle.path).learner
    learner.spec["max_length"] = 12  # ten words of text per window: Erin is the twelfth word
    text = "the sea was calm and the sky was clear today . Erin flew to Oslo today ."
    assert ("PER", "Erin") in assert_spans_slice(text, learner.predict([text])[0])
    person = explain_entity(learner, text, "PER", steps=16)
    assert person["entity"]["text"] == "Erin" and "erin" in person["tokens"]
    assert len(person["tokens"]) <= 10 and person["output"] != person["baseline_output"]
    gap = person["output"] - person["baseline_output"]
    assert sum(person["attributions"]) == pytest.approx(gap, abs=max(0.05 * abs(gap), person["convergence_delta"]))


def _spans(text: str, *pairs: tuple[str, str]) -> list[dict]:
    return [{"start": text.index(w), "end": text.index(w) + len(w), "label": label} for w, label in pairs]


@pytest.mark.slow
def test_span_corrections_are_checked_against_the_text_and_retrain_gates_on_entity_f1(english_bundle, tmp_path):
    from modelyard.errors import UserError
    from modelyard.monitoring.feedback import import_feedback
    from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord
    from modelyard.monitoring.retrain import retrain

    meetings = [("Erin", "Alice", "Cairo"), ("Bob", "Carol", "Lima"), ("Carol", "Frank", "Oslo"),
                ("Dave", "Erin", "Paris"), ("Frank", "Dave", "Tokyo"), ("Alice", "Bob", "Quito"),
                ("Bob", "Erin", "Lima"), ("Erin", "Carol", "Oslo")]  # fmt: skip
    texts = [f"Yesterday {a} met {b} in {city} ." for a, b, city in meetings]
    writer = PredictionLogWriter()
    writer.append(
        [PredictionRecord(f"t{i}", 1000.0 + i, english_bundle.name, "1", t, {}, 1.0) for i, t in enumerate(texts)]
    )
    writer.close()
    rows = [
        {"prediction_id": f"t{i}", "label": _spans(t, (a, "PER"), (b, "PER"), (city, "LOC"))}
        for i, (t, (a, b, city)) in enumerate(zip(texts, meetings, strict=True))
    ]
    feedback = tmp_path / "spans.jsonl"
    bad = [{**rows[0], "label": [{"start": 10, "end": 99, "label": "PER"}]}]
    write_jsonl(feedback, [*rows[1:], *bad])
    with pytest.raises(DataError, match=r"spans.jsonl, line 8: the spans: entity 0 \(10, 99\) lies outside the text"):
        import_feedback(feedback, str(english_bundle.path))
    write_jsonl(feedback, [{**rows[0], "label": _spans(texts[0], ("Erin", "ORG"))}])
    with pytest.raises(UserError, match=r"line 1: label 'ORG' is not one of the model's 2 labels"):
        import_feedback(feedback, str(english_bundle.path))
    with serving(english_bundle.path) as client:
        outside = client.post("/v1/feedback", json={"prediction_id": "t0", "label": bad[0]["label"]})
        served = client.post("/v1/feedback", json={"prediction_id": "t0", "label": rows[0]["label"]})
    assert outside.status_code == 422 and "lies outside the text" in outside.json()["error"]["message"]
    assert served.status_code == 200
    write_jsonl(feedback, rows[1:])
    assert import_feedback(feedback, str(english_bundle.path))["imported"] == 7

    config = english_bundle.path.parent / "config.yaml"
    decision = retrain(config, str(english_bundle.path), overrides=["train.epochs=1"], output=tmp_path / "challenger")
    assert decision["metric"] == "entity_f1"
    assert decision["feedback"] == {
        "used_for_training": 6,
        "held_out": 2,
        "held_out_in_training_data": 0,
        "in_test_split": 0,
        "skipped": 0,
    }
    old, new = decision["champion"], decision["challenger"]
    metrics = json.loads((english_bundle.path / "metrics.json").read_text())["test"]
    assert old["entity_f1"] == pytest.approx(metrics["entity_f1"]) and set(old["per_class_f1"]) == {"LOC", "PER"}
    assert old["feedback"]["samples"] == 2 and "entity_f1" in new["feedback"]
    assert decision["promoted"] is (new["entity_f1"] > old["entity_f1"])
    splits = english_bundle.task.prepare(english_bundle.config).splits
    in_test = set(splits["test"]["text"].str.lower())  # template sentences repeat: those are not trained on
    kept = sum(text.lower() not in in_test for text in splits["train"]["text"])
    after = json.loads((Path(new["path"]) / "data_report.json").read_text())["splits"]["train"]
    assert after == kept + 6
