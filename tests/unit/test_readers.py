from pathlib import Path

import pytest

from modelyard.config import FormatOptions
from modelyard.data.readers import read_table, require_columns, stream_input, stream_table
from modelyard.errors import DataError


def test_crlf_and_a_byte_order_mark_are_read_cleanly(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbftext,label\r\nhello,a\r\n"a, quoted",b\r\n')
    frame, report = read_table(path)
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["hello", "a, quoted"]
    assert report.skipped == 0


def test_rows_with_the_wrong_field_count_are_skipped_and_reported_by_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nok,a\nbad,a,extra\nfine,b\n")
    frame, report = read_table(path)
    assert frame["text"].tolist() == ["ok", "fine"]
    assert report.skipped == 1
    assert report.problems == ["line 3: expected 2 fields, found 3"]


def test_the_index_keeps_source_line_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfirst,a\n\nthird,b\n")
    frame, _ = read_table(path)
    assert frame.index.tolist() == [2, 4]


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nok,a\nbad \xff\xfe,b\n")
    with pytest.raises(DataError, match=r"d\.csv: line 3: bytes that are not valid utf-8"):
        read_table(path)


def test_other_encodings_are_read_when_configured(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\n好吃,1\n".encode("gb18030"))
    frame, _ = read_table(path, FormatOptions(encoding="gb18030"))
    assert frame["text"].tolist() == ["好吃"]


def test_tsv_without_header_uses_given_names(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("1\t10\t5\n2\t11\t3\n")
    frame, _ = read_table(path, FormatOptions(header=False, names=["user", "item", "rating"]))
    assert frame["item"].tolist() == ["10", "11"]


def test_jsonl_skips_lines_that_are_not_objects(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\nnot json\n{"text": "b", "label": 2}\n')
    frame, report = read_table(path)
    assert frame["text"].tolist() == ["a", "b"]
    assert report.problems[0].startswith("line 2: not valid JSON")


def test_nul_bytes_are_removed_and_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nhe\x00llo,a\n")
    frame, report = read_table(path)
    assert frame["text"].tolist() == ["hello"]
    assert report.nul_bytes == 1


def test_missing_empty_and_unknown_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="unknown file type"):
        read_table(tmp_path / "x.xlsx")


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_device_or_pipe_is_named_as_not_a_regular_file_rather_than_empty(tmp_path, kind):
    import os

    path = Path("/dev/zero") if kind == "device" else tmp_path / "pipe.csv"
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(DataError, match="not a regular file") as err:
        read_table(path)
    assert str(path) in str(err.value) and "empty" not in str(err.value)


def test_a_wrong_separator_is_detected_rather_than_silently_dropping_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text;label\na,b;x\nc,d;y\ne,f;z\n")
    with pytest.raises(DataError, match="separator"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("d.csv", "text,label\nok,a\nbad,a,extra\n\nfine,b\nmore,c\nlast,a\n"),
        ("d.jsonl", '{"text": "ok"}\nnot json\n{"text": "fine"}\n\n{"text": "more"}\n{"text": "last"}\n'),
    ],
)
def test_streamed_chunks_hold_the_same_rows_lines_and_skips_as_a_whole_read(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    whole, whole_report = read_table(path)
    chunks, report = stream_table(path, chunk_rows=2)
    sizes, lines, texts = [], [], []
    for chunk in chunks:
        sizes.append(len(chunk))
        lines += chunk.index.tolist()
        texts += chunk["text"].tolist()
    assert sizes == [2, 2]
    assert (lines, texts) == (whole.index.tolist(), whole["text"].tolist())
    assert (report.rows, report.skipped, report.problems) == (4, 1, whole_report.problems)


def test_streaming_a_parquet_file_numbers_rows_across_chunks(tmp_path):
    import pandas as pd

    pd.DataFrame({"text": list("abcde")}).to_parquet(tmp_path / "d.parquet", row_group_size=2)
    chunks, report = stream_table(tmp_path / "d.parquet", chunk_rows=2)
    indexes = [chunk.index.tolist() for chunk in chunks]
    assert indexes == [[1, 2], [3, 4], [5]] and report.rows == 5


def test_blank_and_whitespace_only_lines_are_counted_with_their_line_numbers(tmp_path):
    one_column, text = tmp_path / "p.csv", tmp_path / "p.txt"
    one_column.write_text("review\n好吃\n\u3000\n \n难吃\n")
    text.write_text("好吃\n\u3000\n\n难吃\n")
    for path, lines in ((one_column, [3, 4]), (text, [2, 3])):
        frame, report = read_table(path)
        assert len(frame) == 2 and report.blank == 2 and report.blank_lines == lines


def test_a_prediction_input_keeps_json_integers_and_missing_keys_as_the_file_has_them(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "review": "好吃"}\n{"review": "难吃", "n": [1]}\n{"id": 3, "n": "x"}\n')
    chunks, _ = stream_input(path, FormatOptions(), 10)
    table, frame = next(chunks)
    assert table.column("id").to_pylist() == [1, None, 3] and str(table.schema.field("id").type) == "int64"
    assert table.column("review").to_pylist() == ["好吃", "难吃", None]
    assert table.column("n").to_pylist() == [None, "[1]", "x"]  # mixed values as text
    assert frame.index.tolist() == [1, 2, 3]


def test_a_prediction_input_that_is_not_utf8_is_refused_with_predicts_own_option_in_the_hint(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes("review\n好吃\n".encode("gb18030"))
    chunks, _ = stream_input(path, FormatOptions(), 10)
    with pytest.raises(DataError, match="not valid utf-8") as caught:
        next(chunks)
    assert "--encoding" in caught.value.hint and "data.format" not in caught.value.hint


def test_a_truncated_utf16_file_names_the_line_of_its_broken_bytes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nhello,a\nworld,b\n".encode("utf-16")[:-1])
    with pytest.raises(DataError, match=r"d\.csv: line 3: bytes that are not valid utf-16 \(truncated data\)"):
        read_table(path, FormatOptions(encoding="utf-16"))


def test_names_for_a_file_with_a_header_replace_its_names_and_its_header_is_no_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,category\nhello,a\nworld,b\n")
    frame, report = read_table(path, FormatOptions(names=["t", "c"]))
    assert list(frame.columns) == ["t", "c"]
    assert frame["t"].tolist() == ["hello", "world"]
    assert report.rows == 2


def test_names_that_do_not_match_the_header_row_are_refused_counting_both(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,category\nhello,a\n")
    with pytest.raises(DataError, match="names gives 3 names; the header row has 2 columns"):
        read_table(path, FormatOptions(names=["a", "b", "c"]))


def test_a_malformed_record_that_a_quote_spreads_over_several_lines_names_them_all(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nok,a\n"broken,b\nstill, inside\nend",c,d\nfine,b\n')
    frame, report = read_table(path)
    assert frame["text"].tolist() == ["ok", "fine"]
    assert report.problems == ["lines 3-5: expected 2 fields, found 3"]


def test_a_quote_left_open_near_the_end_is_refused_rather_than_swallowing_the_last_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('id,text\n1,card lost\n4,"unterminated quote\n5,top up\n6,x\n')
    with pytest.raises(DataError, match="line 3: a quote opened here is never closed; it swallows lines 3-5"):
        read_table(path)


def test_a_last_line_without_a_newline_or_with_a_closed_multiline_quote_is_read(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"two\nlines",a\nlast,b')
    frame, report = read_table(path)
    assert frame["text"].tolist() == ["two\nlines", "last"]
    assert report.skipped == 0


def test_a_semicolon_file_read_as_csv_hints_at_the_separator_option(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text;category\nhello;a\n")
    frame, _ = read_table(path)
    with pytest.raises(DataError, match="no column 'text'") as err:
        require_columns(frame, {"text_column": "text"}, str(path))
    assert err.value.hint == "the header looks separated by ';': set data.format.sep"


def test_a_json_array_in_a_json_file_says_json_files_are_json_lines(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b"}\n]\n')
    with pytest.raises(DataError, match="lines are not JSON objects") as err:
        read_table(path)
    assert "read as JSON Lines: one object per line" in err.value.hint


def test_a_utf16_file_read_as_utf8_suggests_utf16_for_its_byte_order_mark(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nhello,a\n".encode("utf-16"))
    with pytest.raises(DataError, match="line 1: bytes that are not valid utf-8") as err:
        read_table(path)
    assert err.value.hint == "the file starts with a UTF-16 byte-order mark: set data.format.encoding utf-16"


def test_a_file_not_in_the_encoding_named_asks_whether_it_is_in_that_encoding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nhello\x80,a\n")
    with pytest.raises(DataError, match="line 2: bytes that are not valid gbk") as err:
        read_table(path, FormatOptions(encoding="gbk"))
    assert err.value.hint.startswith("is the file gbk? set data.format.encoding with its encoding (e.g. utf-8")


def test_a_file_read_for_a_commands_flags_names_the_flags_in_its_hints(tmp_path):
    from modelyard.data.readers import PREDICT, hints

    path = tmp_path / "d.csv"
    path.write_bytes("text,label\n好吃,a\n".encode("gb18030"))
    with hints(PREDICT), pytest.raises(DataError) as err:
        read_table(path)
    assert err.value.hint == "save the file as UTF-8, or pass --encoding (e.g. gb18030, latin-1)"
    with pytest.raises(DataError) as err:
        read_table(path)
    assert "set data.format.encoding" in err.value.hint
