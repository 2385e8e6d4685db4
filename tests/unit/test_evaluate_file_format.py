"""`evaluate --data FILE` reads FILE as `predict --input` reads one: UTF-8 (or `--encoding`), separated by its
extension (or `--sep`), whatever the encoding and separator of the file the bundle was trained on."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import modelyard
from modelyard.cli import app
from modelyard.errors import DataError, UserError

ROWS = "text,category\n我的卡 how do I activate my card,activate_my_card\nhow old must I be,age_limit\n"


def test_a_utf8_file_is_scored_though_the_training_file_was_gb18030(tfidf_bundle, tmp_path):
    model = modelyard.load(tfidf_bundle)
    model.config.data.format.encoding = "gb18030"  # as a bundle trained from a GB18030 file records it
    source = tmp_path / "more.csv"
    source.write_text(ROWS, encoding="utf-8")
    assert model.evaluate(source)["accuracy"] >= 0
    source.write_bytes(ROWS.encode("gb18030"))
    with pytest.raises(DataError, match="line 2: bytes that are not valid utf-8") as err:
        model.evaluate(source)
    assert err.value.hint == "save the file as UTF-8, or pass --encoding (e.g. gb18030, latin-1)"
    assert model.evaluate(source, encoding="gb18030")["accuracy"] >= 0


def test_the_encoding_and_sep_options_of_evaluate_read_another_file_format(tfidf_bundle, tmp_path):
    source = tmp_path / "more.csv"
    source.write_bytes(ROWS.replace(",", ";").encode("gb18030"))
    cli = ["evaluate", str(tfidf_bundle), "--data", str(source)]
    result = CliRunner().invoke(app, [*cli, "--encoding", "gb18030", "--sep", ";"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout
    result = CliRunner().invoke(app, [*cli, "--encoding", "nope"])
    assert isinstance(result.exception, UserError) and "--encoding nope" in str(result.exception)
    result = CliRunner().invoke(app, ["evaluate", str(tfidf_bundle), "--encoding", "gb18030"])
    assert isinstance(result.exception, UserError) and "--data" in str(result.exception)


def test_a_file_of_one_class_is_scored_with_the_rows_cleaning_dropped_named(tfidf_bundle, tmp_path):
    source = tmp_path / "complaints.csv"
    source.write_text(
        "text,category\nhow do I activate my card,activate_my_card\n,activate_my_card\nactivate it please,"
        "activate_my_card\n",
        encoding="utf-8",
    )
    result = modelyard.load(tfidf_bundle).evaluate(source)  # training's "only one class" is no rule for scoring
    assert result["samples"] == 2
    assert any("the metrics score the rest" in note for note in result["notes"])
