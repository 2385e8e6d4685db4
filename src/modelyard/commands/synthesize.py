"""`modelyard synthesize CONFIG --rows N`: a synthetic copy of a tabular config's table, with fidelity and privacy
reports beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def synthesize(
    config: Annotated[Path, typer.Argument(help="a tabular_classification or tabular_regression config")],
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, help="synthetic rows to write")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help=".csv or .parquet; default: NAME-synthetic.csv here")
    ] = None,
    method: Annotated[str, typer.Option(help="copula (Gaussian, per class) or ctgan (conditional GAN)")] = "copula",
    seed: Annotated[int, typer.Option(help="makes the table reproducible")] = 42,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="ctgan: passes over the data")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="as the global -q: no progress or summary")] = False,
) -> None:
    """Learn a generator on the config's table and write synthetic rows with the same columns and types, plus an
    HTML and JSON report: per-column distances, correlations, train-on-synthetic / test-on-real, and privacy
    (exact copies, always 0, and distance to the closest real record). The last line printed is the table's path.

    Example: modelyard synthesize examples/credit_scoring.yaml --rows 5000 --output credit-synthetic.csv
    """
    from modelyard.commands.console import quiet_mode
    from modelyard.synthetic import synthesize as run
    from modelyard.tasks import load_config

    quiet = quiet_mode(quiet)
    loaded = load_config(config, set_ or [])
    output = output or Path(f"{loaded.name}-synthetic.csv")
    result = run(loaded, rows, output, method, seed, epochs, quiet)
    if not quiet:
        err = Console(stderr=True)
        util, privacy = result.report["fidelity"]["utility"], result.report["privacy"]
        summary = {
            "rows": result.report["rows"],
            "metric": util["metric"],
            "train_on_real": util["train_on_real"].get(util["metric"]),
            "train_on_synthetic": util["train_on_synthetic"].get(util["metric"]),
            "exact_copies": privacy["exact_copies"],
            "median_dcr": {"synthetic": privacy["dcr"]["synthetic"]["median"]}
            | {"real_holdout": privacy["dcr"]["real_holdout"]["median"]},
        }
        err.print(json.dumps(summary), highlight=False, soft_wrap=True)
        for note in result.report["notes"]:
            err.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
        err.print(f"report: {result.report_html} ({result.report_json.name} beside it)", markup=False)
    print(result.output)
