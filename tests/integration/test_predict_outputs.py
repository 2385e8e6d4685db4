"""`predict`, `evaluate` and `report` outputs on a real TF-IDF bundle: written in the format their name says,
never over the input, refused before any work when they cannot be written, and malformed input rows named
rather than silently left out."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

import modelyard

pytestmark = pytest.mark.slow


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the installed entry point in this process: (exit code, stderr)."""
    from modelyard import cli as entry

    monkeypatch.setattr(sys, "argv", ["modelyard", "-q", *args])
    try:
        entry.main()
        code = 0
    except SystemExit as done:
        code = done.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_top_k_predictions_to_parquet_are_parquet(tfidf_bundle, tmp_path, monkeypatch, capsys):
    source, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    source.write_text("text\nI lost my card\nwhere is my refund\n")
    code, err = cli(monkeypatch, capsys, "predict", str(tfidf_bundle), "--input", str(source), "--output", str(out),
                    "--top-k", "2")  # fmt: skip
    assert code == 0, err
    scored = pd.read_parquet(out)
    assert list(scored["text"]) == ["I lost my card", "where is my refund"]
    assert [len(json.loads(p)) for p in scored["probabilities"]] == [2, 2]


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tfidf_bundle, tmp_path, monkeypatch, capsys):
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "first"}\n{"text": "second"}\n')
    code, err = cli(monkeypatch, capsys, "predict", str(tfidf_bundle), "--input", str(source), "--output", str(source))
    assert code == 1 and "is the --input file" in err
    assert source.read_text() == '{"text": "first"}\n{"text": "second"}\n'


@pytest.mark.parametrize("top_k", ["1", "2"])  # streamed, and read whole
def test_malformed_rows_are_named_not_silently_dropped(tfidf_bundle, tmp_path, monkeypatch, capsys, top_k):
    source, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"text": "first"}\n{"text": "second",}\n{"text": "third"}\n')
    code, err = cli(monkeypatch, capsys, "predict", str(tfidf_bundle), "--input", str(source), "--output", str(out),
                    "--top-k", top_k)  # fmt: skip
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["first", "third"]
    assert "1 malformed rows skipped, not scored (first: line 2" in " ".join(err.split())


@pytest.mark.parametrize("top_k", ["1", "2"])  # streamed, and read whole
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_integer_input_columns_stay_integers_though_a_row_lacks_them(
    tfidf_bundle, tmp_path, monkeypatch, capsys, top_k, suffix
):
    source, out = tmp_path / "rows.jsonl", tmp_path / f"out{suffix}"
    rows = ['{"id": 1, "text": "I lost my card"}', '{"text": "refund"}', '{"id": 9007199254740993, "text": "x"}']
    source.write_text("\n".join(rows) + "\n")
    code, err = cli(monkeypatch, capsys, "predict", str(tfidf_bundle), "--input", str(source), "--output", str(out),
                    "--top-k", top_k)  # fmt: skip
    assert code == 0, err
    if suffix == ".jsonl":
        assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, None, 9007199254740993]
    else:
        assert [line.split(",")[0] for line in out.read_text().splitlines()] == ["id", "1", "", "9007199254740993"]


@pytest.mark.parametrize("command", ["predict", "evaluate", "report"])
def test_an_output_that_cannot_be_a_file_is_refused_before_any_work(
    tfidf_bundle, tmp_path, monkeypatch, capsys, command
):
    source = tmp_path / "in.csv"
    source.write_text("text\nI lost my card\n")
    (tmp_path / "taken.csv").mkdir()
    given = {"predict": ["--input", str(source)], "evaluate": [], "report": []}[command]
    for output, problem in ((tmp_path / "taken.csv", "it is a folder"), (source / "x.csv", "is a file, not a folder")):
        monkeypatch.setattr(modelyard.api, "load", lambda ref: pytest.fail("the model loaded before the check"))
        code, err = cli(monkeypatch, capsys, command, str(tfidf_bundle), *given, "--output", str(output))
        assert code == 1 and f"cannot write {output}: " in err and problem in " ".join(err.split())


def test_evaluate_drops_and_names_labels_the_model_never_saw(tfidf_bundle, tmp_path):
    model = modelyard.load(tfidf_bundle)
    known = model.labels[0]
    data = tmp_path / "labelled.csv"
    data.write_text(f"text,category\nI lost my card,{known}\nhello,brand_new_label\nhello again,brand_new_label\n")
    result = model.evaluate(data)
    assert result["samples"] == 1
    assert result["notes"] == [f"{data}: 2 rows dropped: labels the model never saw (brand_new_label)"]


def test_evaluate_says_how_many_rows_cleaning_left_out(tfidf_bundle, tmp_path):
    model = modelyard.load(tfidf_bundle)
    a, b = model.labels[:2]
    data = tmp_path / "labelled.csv"
    data.write_text(f"text,category\nI lost my card,{a}\nI lost my card,{a}\nwhere is my money,{b}\n")
    result = model.evaluate(data)
    assert result["samples"] == 2
    assert result["notes"] == [f"{data}: 3 rows, 1 dropped: 0 empty, 0 without label, 1 duplicates "
                               "(0 with conflicting labels); the metrics score the rest"]  # fmt: skip


def test_evaluate_names_malformed_rows_it_could_not_score(tfidf_bundle, tmp_path):
    model = modelyard.load(tfidf_bundle)
    a, b = model.labels[:2]
    data = tmp_path / "labelled.jsonl"
    rows = [{"text": "I lost my card", "category": a}, {"text": "where is my money", "category": b}]
    data.write_text(json.dumps(rows[0]) + "\n{broken\n" + json.dumps(rows[1]) + "\n")
    result = model.evaluate(data)
    assert result["samples"] == 2
    assert any("1 malformed rows skipped" in note for note in result["notes"]), result["notes"]
