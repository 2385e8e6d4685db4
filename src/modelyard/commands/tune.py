"""`modelyard tune CONFIG`: hyper-parameter search with Optuna; workers share one storage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.commands.console import STATE, data_report, err
from modelyard.state import masked


def tune(
    config: Annotated[Path, typer.Argument(help="a config with a tune: section")],
    trials: Annotated[int, typer.Option("--trials", min=1, help="trials to run in this worker")] = 10,
    timeout: Annotated[float | None, typer.Option(help="stop starting trials after this many seconds")] = None,
    storage: Annotated[str | None, typer.Option(help="study database URL; default sqlite under MODELYARD_HOME")] = None,
    study: Annotated[str | None, typer.Option(help="study name; default the config's name")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="where to write the best config")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: --set train.epochs=2")] = None,
    train_best: Annotated[bool, typer.Option("--train-best", help="train (and register) the best config")] = False,
) -> None:
    """Hyper-parameter search (Optuna TPE, median pruning); several workers can share one --storage.

    Example: modelyard tune examples/quickstart_tune.yaml --trials 8 --train-best
    """
    from modelyard import api
    from modelyard.tuning import tune as run_tune

    result = run_tune(config, trials, timeout, storage, study, output, set_ or [])
    err.print(
        f"study {result.study} ({masked(result.storage)}): {result.trials} trials, {result.pruned} pruned; "
        f"best {result.best_value:.4f} with {result.best_params}"
    )
    print(result.best_config)
    if train_best:
        model = api.train(result.best_config, quiet=STATE["quiet"], on_report=data_report)
        print(model.path)
