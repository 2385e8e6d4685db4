"""The journal of a streamed batch-scoring run: its parts joined into the output exactly as they were scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest

from modelyard.batch.journal import Journal, OutputLock
from modelyard.errors import UserError
from modelyard.predict_io import JSON_TEXT

FLOATS = [0.1 + 0.2, 1.5e-11, 0.000012345678901, 0.5758295655250549, 1e300]


def identity(name: str) -> dict[str, Any]:
    return {"input": {"path": name}, "bundle": "b", "output": ".csv"}


def test_a_jsonl_output_keeps_every_float_exactly_and_nested_answers_as_json(tmp_path):
    topk = pa.field("top_k", pa.string(), metadata=JSON_TEXT)
    with Journal(tmp_path / "out.jsonl", identity("in.csv"), chunk_rows=3) as journal:
        for start in (0, 3):
            rows = range(start, min(start + 3, len(FLOATS)))
            table = pa.table({"x": [FLOATS[i] for i in rows], "id": pa.array([i if i % 2 else None for i in rows])})
            table = table.append_column(topk, pa.array([json.dumps([{"label": "a", "p": FLOATS[i]}]) for i in rows]))
            journal.add(table, {})
        journal.assemble()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["x"] for row in rows] == FLOATS  # exact: pandas' to_json wrote 0.3, 0.0 and 0.0000123457
    assert [row["top_k"][0]["p"] for row in rows] == FLOATS
    assert [row["id"] for row in rows] == [None, 1, None, 3, None]
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_a_second_run_over_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    output = tmp_path / "out.csv"
    with Journal(output, identity("a.csv"), chunk_rows=2) as first:
        first.add(pa.table({"x": [1, 2]}), {})
        live = rf"another run is writing .*out\.csv \(pid {os.getpid()}\)"  # not "a stopped run": this one is live
        with pytest.raises(UserError, match=live), Journal(output, identity("b.csv"), chunk_rows=2):
            pass
    stopped = "holds a stopped run over another input"  # released: now it is a stopped run
    with pytest.raises(UserError, match=stopped), Journal(output, identity("b.csv"), chunk_rows=2):
        pass
    with Journal(output, identity("a.csv"), chunk_rows=2) as again:
        assert again.parts == [2]


def test_the_lock_of_a_killed_run_is_released_and_a_run_that_never_wrote_leaves_no_folder(tmp_path):
    output = tmp_path / "out.parquet"
    holder = "import sys, time; from pathlib import Path; from modelyard.batch.journal import OutputLock;"
    holder += "OutputLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", holder, str(output)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"another run is writing .* \(pid {child.pid}\)"):
            OutputLock(output).acquire()
    finally:
        child.kill()
        child.wait()
    with OutputLock(output):  # kill -9 released it
        pass
    assert not (tmp_path / "out.parquet.partial").exists()
