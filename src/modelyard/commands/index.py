"""`modelyard index DOCS_DIR --output INDEX`: documents -> a searchable index folder, updated incrementally."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

STAGES = {"reading": "reading files", "embedding": "embedding chunks", "writing": "writing the index"}


def index(
    docs: Annotated[
        Path,
        typer.Argument(metavar="DOCS_DIR", help="a folder of .md, .txt, .html and .pdf files (searched recursively)"),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="the index folder; an existing index is updated")],
    encoder: Annotated[
        str | None,
        typer.Option(help="minilm-l6 (English, default) or multilingual-e5-small (Chinese and ~100 languages)"),
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(min=1, help="words per chunk (default 100)")] = None,
    overlap: Annotated[int | None, typer.Option(min=0, help="words shared by neighbouring chunks (default 20)")] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads (default: all cores; 1 on a machine busy with other work)")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="as the global -q: no progress or summary")] = False,
) -> None:
    """Read, chunk and embed documents into an index for hybrid (dense + BM25) search. Run it again on the same
    --output to update: only changed and new files are embedded, deleted ones are dropped. The last line printed
    is the index folder; serve it with `modelyard serve INDEX` (POST /v1/search, POST /v1/embeddings).

    Example: modelyard index examples/retrieval/docs --output my-index
    """
    from modelyard.commands.console import quiet_mode
    from modelyard.retrieval.index import build

    quiet = quiet_mode(quiet)
    if threads:
        import torch

        torch.set_num_threads(threads)
    err = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES[stage], total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = build(docs, output, encoder, chunk_size, overlap, progress)
    if not quiet:
        if report.rebuilt:
            err.print(f"note: {report.rebuilt}", markup=False)
        err.print(
            f"{len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
            f"{report.unchanged} unchanged files; {report.embedded_chunks} chunks embedded, {report.chunks} in the "
            f"index ({report.seconds:.1f} s)",
            markup=False,
        )
    for name in report.without_text:  # a warning: -q hides the summary, never this
        err.print(f"warning: {name} has no text to index (a scanned PDF needs OCR first)", markup=False)
    print(output)
