"""The journal of a streamed batch-scoring run: its parts joined into the output exactly as they were scored."""

from __future__ import annotations

import json

import pyarrow as pa

from modelyard.batch.journal import Journal
from modelyard.predict_io import JSON_TEXT

FLOATS = [0.1 + 0.2, 1.5e-11, 0.000012345678901, 0.5758295655250549, 1e300]


def test_a_jsonl_output_keeps_every_float_exactly_and_nested_answers_as_json(tmp_path):
    journal = Journal(tmp_path / "out.jsonl", {"input": "x"}, chunk_rows=3)
    topk = pa.field("top_k", pa.string(), metadata=JSON_TEXT)
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
