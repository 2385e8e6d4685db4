"""How `--engine ray` splits a Parquet input among its workers (read from the footers, before Ray starts): runs of
whole row groups of about `--chunk-rows` rows, never across files, files of a folder in name order."""

from __future__ import annotations

import pandas as pd
import pytest

from modelyard.batch.ray_engine import work_items
from modelyard.errors import DataError, UserError
from modelyard.predict_io import check_output


def write(path, rows: int, group: int) -> None:
    pd.DataFrame({"x": range(rows)}).to_parquet(path, row_group_size=group)


def test_row_groups_are_packed_up_to_the_chunk_size_within_each_file(tmp_path):
    write(tmp_path / "b.parquet", 10, 3)  # groups of 3, 3, 3, 1 rows
    write(tmp_path / "a.parquet", 5, 5)
    write(tmp_path / "_skipped.parquet", 4, 4)  # Spark's _SUCCESS-style and hidden files are not data
    items, total = work_items(tmp_path, chunk_rows=6)
    names = [(item["path"].rsplit("/", 1)[-1], item["row_groups"]) for item in items]
    assert names == [("a.parquet", [0]), ("b.parquet", [0, 1]), ("b.parquet", [2, 3])]
    assert [item["first_row"] for item in items] == [0, 5, 11]  # rows before each, across the folder's files
    assert total == 15
    items, _ = work_items(tmp_path / "b.parquet", chunk_rows=2)  # a group larger than a chunk is one item
    assert [item["row_groups"] for item in items] == [[0], [1], [2], [3]]


def test_an_unreadable_file_or_an_empty_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.parquet files"):
        work_items(tmp_path / "empty", chunk_rows=10)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: not a readable Parquet file"):
        work_items(tmp_path / "bad.parquet", chunk_rows=10)


@pytest.mark.parametrize("name", ["a.parquet", "sub/new.parquet", "link.parquet"])
def test_an_output_the_input_folder_would_read_is_refused(tmp_path, name):
    folder = tmp_path / "fold"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.parquet", 5, 5)
    (tmp_path / "link.parquet").symlink_to(folder / "a.parquet")
    output = tmp_path / name if name == "link.parquet" else folder / name
    with pytest.raises(UserError, match=r"--output .* (is one of the --input folder's files|is inside the --input)"):
        check_output(output, folder)
    assert pd.read_parquet(folder / "a.parquet")["x"].tolist() == list(range(5))


def test_an_output_inside_the_input_folder_that_it_never_reads_is_accepted(tmp_path):
    write(tmp_path / "a.parquet", 5, 5)
    for name in ("_scored.parquet", "scored.csv"):
        check_output(tmp_path / name, tmp_path)
    check_output(tmp_path.parent / "scored.parquet", tmp_path)
