"""Hostile and random input: readers and the config loader answer with a clear error or data, never a crash."""

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.data.readers import read_table
from modelyard.errors import ConfigError, DataError
from modelyard.tasks import config_from_dict

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(content=st.binary(max_size=2000), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]))
def test_any_bytes_give_a_frame_or_a_data_error(tmp_path, content, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    try:
        frame, report = read_table(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert report.rows == len(frame)


@FAST
@given(
    rows=st.lists(
        st.tuples(st.text(string.printable + "好，吃", max_size=30), st.sampled_from(["a", "b"])),
        min_size=1,
        max_size=30,
    )
)
def test_every_written_row_is_read_back_unchanged(tmp_path, rows):
    import csv

    path = tmp_path / "rows.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    frame, report = read_table(path)
    assert report.skipped == 0
    assert list(zip(frame["text"], frame["label"], strict=True)) == rows


def test_an_unclosed_quote_is_named_instead_of_swallowing_the_rest_of_the_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nfine,a\n"never closed,b\n' + "".join(f"row {i},a\n" for i in range(100)))
    with pytest.raises(DataError, match="line 3: a quote opened here is never closed"):
        read_table(path)


def test_an_enormous_single_field_is_read(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "x" * 2_000_000 + ",a\n")
    frame, _ = read_table(path)
    assert len(frame["text"].iloc[0]) == 2_000_000


def test_mixed_encodings_name_the_first_bad_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\n好吃,1\n".encode() + "难吃,0\n".encode("gbk"))
    with pytest.raises(DataError, match="line 3"):
        read_table(path)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@FAST
@given(raw=st.dictionaries(st.sampled_from(["name", "task", "data", "model", "train", "tune", "extra"]), values))
def test_any_config_mapping_validates_or_is_a_config_error(raw):
    try:
        config_from_dict(raw, "fuzz.yaml")
    except ConfigError as err:
        assert "fuzz.yaml" in str(err)


@FAST
@given(text=st.text(max_size=200))
def test_any_yaml_text_loads_or_is_a_config_error(tmp_path, text):
    from modelyard.tasks import load_config

    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        return
    pytest.fail(f"{yaml.safe_load(text)!r} should not be a valid config")
