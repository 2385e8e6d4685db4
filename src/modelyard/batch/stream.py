"""Scoring a table file of any size in one process: chunk by chunk, memory bounded by one chunk, resumable.

The output holds the input columns plus the prediction columns. Learners that score whole frames
(`predict_frame`, the tabular ones) are used as such; any other learner gets its inputs through the task's
reading of a table (`predict_io.frame_inputs`) and its answers flattened to columns.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from modelyard.batch.journal import Journal, bundle_digest, fingerprint, sweep_temp_files
from modelyard.config import FormatOptions
from modelyard.data.readers import ReadReport, parquet_frame, parquet_tables, stream_input
from modelyard.errors import DataError, UserError
from modelyard.predict_io import (
    JSON_TEXT,
    OUTPUTS,
    SchemaProblems,
    Unscored,
    answer_column,
    flat_answer,
    frame_inputs,
    no_text,
    to_arrow,
)

CHUNK_ROWS = 100_000
Progress = Callable[[int, int | None], None]  # (rows done, rows in all when known)
Chunk = tuple[pa.Table, pd.DataFrame]


def predictions_frame(model, chunk: pd.DataFrame, source: Path, top_k: int = 1) -> tuple[pd.DataFrame, set[str]]:
    """One row of prediction columns per input row, and which columns hold nested answers (top-k lists, spans):
    those are JSON text. Above top-1 every learner answers through `predict`, as a one-process run does (a
    learner's `predict_frame` gives the top label only)."""
    score = getattr(model.learner, "predict_frame", None)
    if score is not None and top_k == 1:
        return score(chunk).reset_index(drop=True), set()
    answers = model.predict(frame_inputs(model, chunk, source), top_k=top_k)
    nested = {key for answer in answers for key, value in answer.items() if isinstance(value, list | dict)}
    return pd.DataFrame([flat_answer(a) for a in answers]), nested


def scored_table(model, table: pa.Table, chunk: pd.DataFrame, source: Path, top_k: int = 1) -> pa.Table:
    """The input's columns as read (`table`: a Parquet file's own arrays, so an int64 column with a null stays
    int64) with the predictions for `chunk` (the same rows as a DataFrame) beside them; a prediction column whose
    name the input already uses is written as `prediction_<name>`, and a column of nested answers (JSON text) is
    marked `JSON_TEXT` for a .jsonl output to write as JSON values. An empty chunk gets the input's columns only."""
    kept = set(map(str, chunk.columns))  # a stored pandas index is no input column
    scored = table.select([c for c in table.column_names if c in kept]).replace_schema_metadata(None)
    if chunk.empty:
        return scored
    predictions, nested = predictions_frame(model, chunk, source, top_k)
    for key, column in zip(predictions.columns, to_arrow(predictions).columns, strict=True):
        metadata = JSON_TEXT if key in nested else None
        scored = scored.append_column(
            pa.field(answer_column(key, chunk.columns), column.type, metadata=metadata), column
        )
    return scored


def input_chunks(source: Path, fmt: FormatOptions, chunk_rows: int) -> tuple[Iterator[Chunk], ReadReport]:
    """The input as (Arrow table, DataFrame) chunks of the same rows: the DataFrame is what the learner scores,
    the table what the output copies. A Parquet file's table is its own; another format's holds the file's values."""
    if source.suffix.lower() == ".parquet":
        report = ReadReport(str(source))
        tables = parquet_tables(source, chunk_rows, report)
        return ((table, parquet_frame(table, report.rows - table.num_rows)) for table in tables), report
    return stream_input(source, fmt, chunk_rows)


def without_text_rows(model, table: pa.Table, chunk: pd.DataFrame, source: Path, unscored: Unscored) -> Chunk:
    """The chunk less the rows a text model cannot score (no text), which `unscored` counts."""
    blank = no_text(model, chunk, source)
    if not blank.any():
        return table, chunk
    unscored.add(chunk.index[blank])
    return table.filter(pa.array(~blank.to_numpy())), chunk[~blank]


def reading(source: Path, fmt: FormatOptions) -> dict[str, Any] | None:
    """How a text file is read (encoding by its codec's name: latin-1 and latin1 are one), part of a run's identity:
    a rerun read otherwise would join rows decoded two ways. A Parquet file is read by none of these."""
    if source.suffix.lower() == ".parquet":
        return None
    return fmt.model_dump(mode="json") | {"encoding": codecs.lookup(fmt.encoding).name}


def total_rows(source: Path) -> int | None:
    """Rows in the file when its format says so without reading it (Parquet's footer), else None."""
    if source.suffix.lower() != ".parquet":
        return None
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source).metadata.num_rows
    except Exception:  # an unreadable file is reported by the reader with its own message
        return None


def score_file(
    model,
    source: Path,
    output: Path,
    chunk_rows: int = CHUNK_ROWS,
    warn: Callable[[str], None] | None = None,
    on_progress: Progress | None = None,
    fmt: FormatOptions | None = None,
) -> dict[str, Any]:
    """Score `source` into `output` (.parquet, .csv or .jsonl) chunk by chunk, each chunk journalled in
    `OUTPUT.partial/`: rerunning after a kill skips the chunks done. A text file is read by `fmt` (default: UTF-8,
    by its extension), never by the training file's format. Returns rows, rows/s (of this run), rows resumed, rows
    the reader skipped, rows left unscored for want of a text and, for a learner with `check_frame`, the rows that
    broke the training schema (one `warn` line per chunk that has any)."""
    if output.suffix.lower() not in OUTPUTS:
        raise UserError(f"--output {output}: write {', '.join(OUTPUTS)}")
    source = Path(source)
    if not source.is_file():
        raise DataError(f"input file not found: {source}")
    fmt = fmt or FormatOptions()
    identity = {"input": fingerprint(source), "bundle": bundle_digest(model.path), "output": output.suffix.lower()}
    identity["reading"] = reading(source, fmt)
    with Journal(output, identity, chunk_rows) as journal:  # locked: a second run over `output` is refused
        sweep_temp_files(output)  # a run killed while joining its parts left one
        chunks, report = input_chunks(source, fmt, journal.chunk_rows)
        check = getattr(model.learner, "check_frame", None)
        problems = SchemaProblems(source)
        problems.summary = journal.state.get("schema", problems.summary)
        total, resumed = total_rows(source), journal.rows
        report_progress = on_progress or (lambda done, total: None)
        report_progress(resumed, total)
        started, offset, unscored = time.perf_counter(), 0, Unscored()
        for index, (whole, rows) in enumerate(chunks):
            table, chunk = without_text_rows(model, whole, rows, source, unscored)
            if index >= len(journal.parts):
                if check is not None:
                    problems.add(check(chunk), offset, len(chunk), warn or (lambda _: None))
                journal.add(scored_table(model, table, chunk, source), {"schema": problems.summary})
                report_progress(journal.rows, total)
            offset += len(chunk)
        unscored.add_read(report)
        if not journal.rows:
            raise DataError(
                f"{source}: no rows to score" + (f" ({unscored.message(source)})" if unscored.count else "")
            )
        journal.assemble()
    seconds = time.perf_counter() - started
    rows = journal.rows
    done = {
        "rows": rows,
        "resumed_rows": resumed,
        "seconds": round(seconds, 2),
        "rows_per_second": round((rows - resumed) / max(seconds, 1e-9), 1),
        "skipped": report.skipped,
        "first_skipped": report.problems[0] if report.problems else None,
        "unscored": unscored.as_dict(),
    }
    return done | ({"schema": problems.summary} if check is not None else {})
