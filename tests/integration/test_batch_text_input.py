"""Batch scoring of text files with a text bundle: the input is read as UTF-8 (or `--encoding`) whatever the
training file's encoding, rows with no text are reported by line and never scored, input columns pass unchanged."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

import modelyard
from modelyard.batch import score_file
from modelyard.cli import app
from modelyard.config import FormatOptions
from modelyard.errors import DataError, UserError


def test_a_utf8_input_is_read_as_utf8_though_the_training_file_was_gb18030(tfidf_bundle, tmp_path):
    model = modelyard.load(tfidf_bundle)
    model.config.data.format.encoding = "gb18030"  # as a bundle trained from a GB18030 file records it
    source = tmp_path / "short.csv"
    source.write_text("text\n好吃\n难吃\n", encoding="utf-8")
    score_file(model, source, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == ["好吃", "难吃"]
    source.write_bytes("text\n好吃\n".encode("gb18030"))
    with pytest.raises(DataError, match="not valid utf-8"):
        score_file(model, source, tmp_path / "gbk.jsonl")
    score_file(model, source, tmp_path / "gbk.jsonl", fmt=FormatOptions(encoding="gb18030"))
    assert json.loads((tmp_path / "gbk.jsonl").read_text(encoding="utf-8"))["text"] == "好吃"


def test_the_encoding_option_of_predict_reads_another_encoding(tfidf_bundle, tmp_path):
    source = tmp_path / "gbk.csv"
    source.write_bytes("id;text\n7;我的卡丢了\n".encode("gb18030"))
    cli = ["predict", str(tfidf_bundle), "--input", str(source), "--output", str(tmp_path / "out.csv")]
    result = CliRunner().invoke(app, [*cli, "--encoding", "gb18030", "--sep", ";"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1].startswith("7,我的卡丢了,")
    result = CliRunner().invoke(app, [*cli, "--encoding", "nope"])
    assert isinstance(result.exception, UserError) and "--encoding nope" in str(result.exception)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_rows_with_no_text_are_named_by_line_and_input_columns_pass_unchanged(tfidf_bundle, tmp_path, suffix):
    source = tmp_path / "q.jsonl"
    lines = ['{"id": 1, "text": "card lost"}', '{"text": "refund"}', '{"id": 3}', "", '{"id": 5, "text": "\u3000"}']
    source.write_text("\n".join([*lines, '{"id": 6, "text": "top up"}']) + "\n", encoding="utf-8")
    output = tmp_path / f"out{suffix}"
    result = CliRunner().invoke(app, ["predict", str(tfidf_bundle), "--input", str(source), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "3 rows with no text" in result.output and "lines 3, 4, 5" in result.output
    written = output.read_text(encoding="utf-8").splitlines()
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in written]
        assert [row["id"] for row in rows] == [1, None, 6]
        assert [row["text"] for row in rows] == ["card lost", "refund", "top up"]
    else:
        expected = [["id", "text"], ["1", "card lost"], ["", "refund"], ["6", "top up"]]
        assert [line.split(",")[:2] for line in written] == expected


def test_a_one_column_file_and_a_text_file_report_their_blank_lines(tfidf_bundle, tmp_path):
    model = modelyard.load(tfidf_bundle)
    (tmp_path / "p.csv").write_text("text\ncard lost\n\u3000\n\u3000\nrefund\n", encoding="utf-8")
    (tmp_path / "p.txt").write_text("card lost\n\u3000\n\nrefund\n", encoding="utf-8")
    for name, lines in (("p.csv", [3, 4]), ("p.txt", [2, 3])):
        done = score_file(model, tmp_path / name, tmp_path / f"{name}.csv", chunk_rows=1)
        assert done["rows"] == 2 and done["unscored"] == {"rows": 2, "first": lines, "unit": "line"}


def test_a_file_with_no_text_at_all_is_refused_naming_its_blank_rows(tfidf_bundle, tmp_path):
    (tmp_path / "p.csv").write_text("id,text\n1,\n2, \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no rows to score .*2 rows with no text"):
        score_file(modelyard.load(tfidf_bundle), tmp_path / "p.csv", tmp_path / "out.csv")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_top_k_one_and_three_keep_an_input_column_named_like_an_answer_and_write_answers_alike(
    tfidf_bundle, tmp_path, suffix
):
    """The whole-file path (--top-k 3) replaced an input `label` column; the streamed one (--top-k 1) wrote the
    top-k list as a JSON string in .jsonl."""
    source = tmp_path / "q.csv"
    source.write_text("text,label,probabilities\ncard lost,mine,p1\nrefund,ours,p2\n", encoding="utf-8")
    written = {}
    for k in (1, 3):
        output = tmp_path / f"out{k}{suffix}"
        cli = ["predict", str(tfidf_bundle), "--input", str(source), "--output", str(output), "--top-k", str(k)]
        result = CliRunner().invoke(app, cli)
        assert result.exit_code == 0, result.output
        written[k] = output.read_text(encoding="utf-8").splitlines()
    if suffix == ".jsonl":
        for k, lines in written.items():
            rows = [json.loads(line) for line in lines]
            assert [(r["label"], r["probabilities"]) for r in rows] == [("mine", "p1"), ("ours", "p2")]
            assert len(rows[0]["prediction_probabilities"]) == k and isinstance(rows[0]["prediction_label"], str)
    else:
        header = "text,label,probabilities,prediction_label,score,prediction_probabilities"
        assert written[1][0] == written[3][0] == header
        assert [line.split(",")[:3] for line in written[3][1:]] == [
            ["card lost", "mine", "p1"],
            ["refund", "ours", "p2"],
        ]


def test_ray_workers_leave_out_rows_with_no_text_and_name_them_as_one_process_does(tfidf_bundle, tmp_path, monkeypatch):
    """The workers' code run in this process (Ray only carries their answers): a blank row 401 in the fourth
    chunk was scored, stopped the job and was named `inputs.100`."""
    from modelyard.batch import ray_engine

    texts = ["card lost", "refund please", "top up failed"] * 333
    texts[400], texts[950] = "", "\u3000"  # rows 401 and 951
    source = tmp_path / "in.parquet"
    pd.DataFrame({"id": range(1, 1000), "text": texts}).to_parquet(source, row_group_size=100)

    def in_process(bundle, source, items, workers, chunk_rows, top_k=1):
        scorer = ray_engine.RowGroupScorer(str(bundle), str(source), top_k)
        for item in items:
            for done in scorer.score(item["path"], item["row_groups"], chunk_rows, item["first_row"]):
                yield (item["path"], *done)

    monkeypatch.setattr(ray_engine, "connect", lambda workers: None)
    monkeypatch.setattr(ray_engine, "scored_tables", in_process)
    done = ray_engine.score_file_ray(tfidf_bundle, source, tmp_path / "ray.parquet", workers=1, chunk_rows=300)
    local = score_file(modelyard.load(tfidf_bundle), source, tmp_path / "local.parquet", chunk_rows=300)
    assert done["unscored"] == local["unscored"] == {"rows": 2, "first": [401, 951], "unit": "row"}
    on_ray, one_process = pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(on_ray, one_process)
    assert len(on_ray) == 997


def test_a_stopped_run_is_not_continued_with_another_encoding_or_separator(tfidf_bundle, tmp_path):
    """A rerun with --encoding latin-1 joined rows 1-2 decoded as UTF-8 to rows 3-5 decoded as latin-1."""
    model = modelyard.load(tfidf_bundle)
    source, output = tmp_path / "enc.csv", tmp_path / "out.csv"
    source.write_bytes("text\ncard lost\nrefund\ntop up\ncaf\xe9 card\nlost\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8"):
        score_file(model, source, output, chunk_rows=2)
    assert (tmp_path / "out.csv.partial" / "manifest.json").exists()  # two rows journalled
    other = r"stopped run that read this input with encoding 'utf-8' \(this run: 'iso8859-1'\)"
    with pytest.raises(UserError, match=other):
        score_file(model, source, output, chunk_rows=2, fmt=FormatOptions(encoding="latin-1"))
    with pytest.raises(UserError, match=r"sep None \(this run: ';'\)"):
        score_file(model, source, output, chunk_rows=2, fmt=FormatOptions(sep=";"))
    shutil.rmtree(tmp_path / "out.csv.partial")
    done = score_file(model, source, output, chunk_rows=2, fmt=FormatOptions(encoding="latin1"))
    assert done["rows"] == 5 and done["resumed_rows"] == 0
    assert "café card" in output.read_text(encoding="utf-8")
