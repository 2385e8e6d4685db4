"""Scoring a dataset on a Ray cluster (Ray Data): the bundle is loaded once per worker, batches stream through.

`score_dataset` maps any `ray.data.Dataset` to one with prediction columns; `score_file_ray` reads a Parquet file
(or folder of them) on the cluster and writes one output file on the driver, rows in input order, so the result
equals `modelyard predict` in one process. Ray is imported only here, only when called.
Cluster: `ray start --head` on one machine, `ray start --address HEAD:6379` on the others, then run with
`RAY_ADDRESS=auto` (every node must see the bundle and the input at the same path); without `RAY_ADDRESS` a
local Ray instance with one CPU per worker is started for the run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.batch.stream import CHUNK_ROWS, Progress, scored_frame, to_arrow, total_rows
from modelyard.errors import DataError, UserError
from modelyard.fsutil import atomic_path

BLOCK_BYTES = 16 * 2**20
IN_FLIGHT_BYTES_PER_WORKER = 128 * 2**20


class BundleScorer:
    """A Ray Data worker: loads the bundle in `__init__` (once per worker), then scores pandas batches."""

    def __init__(self, bundle: str, source: str) -> None:
        from modelyard.loader import load

        self.model = load(bundle)
        self.source = Path(source)  # named in error messages

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Arrow in and out: the batch becomes the same DataFrame as in a one-process run (`Table.to_pandas`)."""
        return to_arrow(scored_frame(self.model, batch.to_pandas(), self.source))


def score_dataset(
    bundle: str | Path, dataset: Any, workers: int = 2, batch_size: int = CHUNK_ROWS, source: str = "dataset"
) -> Any:
    """`dataset` (a ray.data.Dataset) with the bundle's prediction columns beside its own, on `workers` workers.
    One task in flight per worker: with rows kept in order, a batch queued behind a finished one whose output
    waits for it stalled a 10-million-row run."""
    import ray

    return dataset.map_batches(
        BundleScorer,
        fn_constructor_args=(str(Path(bundle).resolve()), source),
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=1,
        batch_size=batch_size,
        batch_format="pyarrow",
    )


def connect(workers: int) -> None:
    """Join the cluster named by RAY_ADDRESS, else start a local Ray with a CPU per worker (plus one for reads)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)


def score_file_ray(
    bundle: str | Path,
    source: Path,
    output: Path,
    workers: int = 2,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Score a Parquet input on Ray into one .parquet output (temp file + rename), rows in input order."""
    if output.suffix.lower() != ".parquet":
        raise UserError(f"--output {output}: --engine ray writes .parquet")
    if source.suffix.lower() != ".parquet" and not source.is_dir():
        raise UserError(f"--input {source}: --engine ray reads Parquet (a file or a folder of them)")
    if not source.exists():
        raise DataError(f"input file not found: {source}")
    import ray

    connect(workers)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # output rows in input order
    # Bounded memory: Ray Data's defaults (blocks up to 128 MiB, half the object store in flight) let the reader
    # run gigabytes ahead of the scorers; small blocks and a cap on the bytes in flight keep a run to a few chunks.
    context.target_max_block_size = BLOCK_BYTES
    limits = context.execution_options.resource_limits
    context.execution_options.resource_limits = limits.copy(object_store_memory=IN_FLIGHT_BYTES_PER_WORKER * workers)
    scored = score_dataset(bundle, ray.data.read_parquet(str(source.resolve())), workers, chunk_rows, str(source))
    total = total_rows(source) if source.is_file() else None
    report_progress = on_progress or (lambda done, total: None)
    report_progress(0, total)
    started, rows, writer = time.perf_counter(), 0, None
    with atomic_path(output) as tmp:
        for table in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer = writer or pq.ParquetWriter(tmp, table.schema.remove_metadata())
            writer.write_table(table.cast(writer.schema))
            rows += table.num_rows
            report_progress(rows, total)
        if writer is None:
            raise DataError(f"{source}: no rows to score")
        writer.close()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / max(seconds, 1e-9), 1)}
