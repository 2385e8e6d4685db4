"""Scoring on a Ray cluster: the bundle is loaded once per worker (a Ray actor), batches stream through.

`score_dataset` maps any `ray.data.Dataset` to one with prediction columns; `score_file_ray` scores a Parquet file
(or folder of them) on the cluster and writes one output file on the driver, rows in input order, so the result
equals `modelyard predict` in one process. It uses Ray actors directly, each reading its own row groups: through
Ray Data, the worker running `read_parquet` held 500 to 700 MB of decoded Arrow buffers, Ray Data's own actors
(stats, autoscaling, actor locations) about 290 MB, and a 10-million-row run stalled twice near its end with every
worker idle (cause not found; rows kept in order under an object-store budget is our guess). Ray is imported
only here, only when called.
Cluster: `ray start --head` on one machine, `ray start --address HEAD:6379` on the others, then run with
`RAY_ADDRESS=auto` (every node must see the bundle and the input at the same path); without `RAY_ADDRESS` a
local Ray instance with one CPU per worker is started for the run.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.batch.journal import OutputLock, sweep_temp_files
from modelyard.batch.stream import CHUNK_ROWS, Progress, scored_table, without_text_rows
from modelyard.data.readers import parquet_frame
from modelyard.errors import DataError, UserError
from modelyard.fsutil import atomic_path
from modelyard.predict_io import SchemaProblems, Unscored, check_output, folder_files

OBJECT_STORE_BYTES_PER_WORKER = 256 * 2**20  # a local instance's store; two scored chunks per worker are in it


Scored = tuple[pa.Table | None, dict[str, Any] | None, Unscored]  # a batch scored, what check_frame found, rows left


class BundleScorer:
    """A Ray Data worker: loads the bundle in `__init__` (once per worker), then scores Arrow batches."""

    def __init__(self, bundle: str, source: str, top_k: int = 1) -> None:
        from modelyard.loader import load

        self.model = load(bundle)
        self.source = Path(source)  # named in error messages
        self.top_k = top_k

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Arrow in and out, a row for a row: a file without a feature column the model needs is refused, and so is
        a batch with rows of no text (a mapped dataset has no place to report rows it leaves out)."""
        table, found, unscored = self.scored(batch)
        if table is None:
            SchemaProblems(self.source).add(found, 0, batch.num_rows, lambda _: None)  # raises: columns missing
        if unscored.count:
            raise DataError(unscored.message(self.source), "filter out the rows with no text before scoring")
        return table

    def scored(self, batch: pa.Table, first_row: int = 0) -> Scored:
        """The batch (rows numbered from `first_row` + 1) scored as in a one-process run: the same DataFrame, rows
        with no text left out and counted, input columns copied as they are; with what the learner's `check_frame`
        found in it. No table when a required column is missing."""
        unscored = Unscored()
        table, frame = without_text_rows(self.model, batch, parquet_frame(batch, first_row), self.source, unscored)
        check = getattr(self.model.learner, "check_frame", None)
        found = check(frame) if check is not None else None
        if found is not None and found["missing_columns"]:
            return None, found, unscored
        return scored_table(self.model, table, frame, self.source, self.top_k), found, unscored


class RowGroupScorer(BundleScorer):
    """A Ray actor (one per worker): reads the Parquet row groups it is given, `chunk_rows` rows at a time."""

    def __init__(self, bundle: str, source: str, top_k: int = 1) -> None:
        self.failed: UserError | None = None
        try:
            super().__init__(bundle, source, top_k)
        except UserError as err:  # raised by `score`: a failed constructor reaches the driver only as ActorDiedError
            self.failed = err

    def score(self, path: str, groups: list[int], chunk_rows: int, first_row: int) -> list[Scored]:
        """The row groups `groups` of `path` scored; `first_row`: the rows before them (in a folder, across its
        files), so a row is named by the number a one-process run gives it."""
        if self.failed is not None:
            raise self.failed
        try:
            batches = list(pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, row_groups=groups))
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
        scored = []
        for batch in batches:
            scored.append(self.scored(pa.Table.from_batches([batch]), first_row))
            first_row += batch.num_rows
        return scored


def score_dataset(
    bundle: str | Path,
    dataset: Any,
    workers: int = 2,
    batch_size: int = CHUNK_ROWS,
    source: str = "dataset",
    top_k: int = 1,
) -> Any:
    """`dataset` (a ray.data.Dataset) with the bundle's prediction columns (`top_k` labels for a classifier) beside
    its own, on `workers` workers.
    One task in flight per worker: with rows kept in order, a batch queued behind a finished one whose output
    waits for it stalled a 10-million-row run."""
    import ray

    return dataset.map_batches(
        BundleScorer,
        fn_constructor_args=(str(Path(bundle).resolve()), source, top_k),
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=1,
        batch_size=batch_size,
        batch_format="pyarrow",
    )


def connect(workers: int) -> None:
    """Join the cluster named by RAY_ADDRESS (or one the caller started with its own settings), else start a local
    Ray with a CPU per worker and an object store sized to what the run keeps in flight (Ray's default, 30% of
    RAM, is never used here)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        store = OBJECT_STORE_BYTES_PER_WORKER * workers
        ray.init(num_cpus=workers, object_store_memory=store, include_dashboard=False, log_to_driver=False)


def work_items(source: Path, chunk_rows: int) -> tuple[list[dict[str, Any]], int]:
    """Runs of consecutive row groups of about `chunk_rows` rows (never across files) with the number of the rows
    before each (across the files of a folder), and the rows in all, read
    from the footers on the driver: an unreadable file, or a file of a folder whose columns differ from the first
    file's, is named before any worker starts."""
    files = [source] if source.is_file() else folder_files(source)
    if not files:
        raise DataError(f"--input {source}: no .parquet files in this folder")
    items, total, first = [], 0, None
    for path in files:
        try:
            reader = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
        meta, names = reader.metadata, reader.schema_arrow.names
        first = first or (path, names)
        if names != first[1]:
            raise DataError(
                f"{path}: its columns ({', '.join(names)}) differ from those of {first[0]} ({', '.join(first[1])})",
                "every file of the folder needs the same columns in the same order; or score the files one by one",
            )
        run, rows, first_row = [], 0, total
        for group in range(meta.num_row_groups):
            if run and rows + meta.row_group(group).num_rows > chunk_rows:
                items.append({"path": str(path.resolve()), "row_groups": run, "first_row": first_row})
                run, rows, first_row = [], 0, first_row + rows
            run.append(group)
            rows += meta.row_group(group).num_rows
        if run:
            items.append({"path": str(path.resolve()), "row_groups": run, "first_row": first_row})
        total += meta.num_rows
    return items, total


def scored_tables(
    bundle: str | Path, source: Path, items: list[dict[str, Any]], workers: int, chunk_rows: int, top_k: int = 1
) -> Iterator[tuple[str, pa.Table | None, dict[str, Any] | None, Unscored]]:
    """The items scored on `workers` actors, two in flight each (one scoring, one queued), in input order. Item i
    goes to actor i mod workers, and the oldest is always awaited first, so at most 2 x workers scored items exist
    at a time, whatever the file's size. Each comes with its file, what `check_frame` found in it and its rows left
    unscored for want of a text."""
    import ray

    actor = ray.remote(num_cpus=1)(RowGroupScorer)
    pool = [actor.remote(str(Path(bundle).resolve()), str(source), top_k) for _ in range(workers)]
    pending: deque[Any] = deque()
    try:
        for index, item in enumerate(items):
            if len(pending) == 2 * workers:
                path, ref = pending.popleft()
                yield from ((path, *done) for done in fetched(ref))
            ref = pool[index % workers].score.remote(item["path"], item["row_groups"], chunk_rows, item["first_row"])
            pending.append((item["path"], ref))
        while pending:
            path, ref = pending.popleft()
            yield from ((path, *done) for done in fetched(ref))
    finally:
        for scorer in pool:
            ray.kill(scorer)


def fetched(ref: Any) -> list[Scored]:
    """A worker's answer; a modelyard error raised on the worker (such as an unreadable bundle) as itself."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, UserError):
            raise err.cause from None
        raise


def score_file_ray(
    bundle: str | Path,
    source: Path,
    output: Path,
    workers: int = 2,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    top_k: int = 1,
) -> dict[str, Any]:
    """Score a Parquet input on Ray into one .parquet output (temp file + rename), rows in input order, with
    `top_k` labels per row for a classifier as `predict --top-k` gives them in one process. The
    schema checks of a one-process run apply (a missing feature column is refused, wrong types and unseen
    categories are reported through `warn`); in a folder, rows are numbered across its files in name order."""
    if output.suffix.lower() != ".parquet":
        raise UserError(f"--output {output}: --engine ray writes .parquet")
    if source.suffix.lower() != ".parquet" and not source.is_dir():
        raise UserError(f"--input {source}: --engine ray reads Parquet (a file or a folder of them)")
    if not source.exists():
        raise DataError(f"input file not found: {source}")
    check_output(output, source)  # the API too: an output among a folder's files would replace one
    items, total = work_items(source, chunk_rows)
    if not total:
        raise DataError(f"{source}: no rows to score")
    with OutputLock(output):  # a second run over `output`, Ray or not, is refused while this one lives
        connect(workers)
        sweep_temp_files(output)  # a run killed while writing left one
        report_progress = on_progress or (lambda done, total: None)
        report_progress(0, total)
        problems, checked, unscored = SchemaProblems(source), False, Unscored()
        started, rows, writer = time.perf_counter(), 0, None
        with atomic_path(output) as tmp:
            for path, table, found, blank in scored_tables(bundle, source, items, workers, chunk_rows, top_k):
                if found is not None:
                    size = table.num_rows if table is not None else 0
                    problems.add(found, rows, size, warn or (lambda _: None))  # raises when a column is missing
                    checked = True
                if blank.count:
                    unscored.add(pd.Index(blank.first, name=blank.unit), blank.count)
                if not table.num_rows:  # every row without a text: no prediction columns, as a one-process run
                    continue
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(cast_to(table, writer.schema, path))
                rows += table.num_rows
                report_progress(rows, total)
            if writer is None:
                blank = f" ({unscored.message(source)})" if unscored.count else ""
                raise DataError(f"{source}: no rows to score{blank}")
            writer.close()
    seconds = time.perf_counter() - started
    done = {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / max(seconds, 1e-9), 1)}
    done["unscored"] = unscored.as_dict()
    return done | ({"schema": problems.summary} if checked else {})


def cast_to(table: pa.Table, schema: pa.Schema, path: str) -> pa.Table:
    """A scored chunk in the output's schema (the first chunk's); a column of another type names its file."""
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as err:
        raise DataError(
            f"{path}: a column's type differs from the one it has in the rows before ({err})",
            "give that column one type in every file, or score the files one by one",
        ) from None
