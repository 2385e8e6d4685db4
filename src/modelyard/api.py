"""The Python API: `train`, `load`, `validate`, and the `Model` they return (`predict`, `evaluate`).

Few verbs, the same for every task, no hidden global state (scikit-learn's estimator API is the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelyard.config import Config
from modelyard.loader import Model, load
from modelyard.pipeline import default_output, latest_unfinished, train
from modelyard.protocols import PreparedData
from modelyard.tasks import get_task, load_config

__all__ = ["Model", "default_output", "latest_unfinished", "load", "serve", "train", "validate", "validate_stream"]


def validate(config: Config | str | Path, overrides: Sequence[str] = ()) -> PreparedData:
    """Read, clean and split the data exactly as `train` would, and report; trains nothing."""
    config = config if isinstance(config, Config) else load_config(config, list(overrides))
    return get_task(config.task).prepare(config)


def validate_stream(config: Config | str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Check data files too large to hold in one streaming pass each (rows, skips, empty values, labels,
    duplicates, lengths, sha256), in bounded memory; splits and tokenizer coverage need `validate`."""
    from modelyard.data.streaming import scan

    config = config if isinstance(config, Config) else load_config(config, list(overrides))
    return scan(config.data)


def serve(model: str | Path, **settings: Any) -> None:
    """Serve a bundle or `models:/NAME@ALIAS` over HTTP until SIGTERM (settings: host, port, max_batch_size, ...)."""
    from modelyard.serving.run import run_server
    from modelyard.serving.settings import ServeSettings

    run_server(str(model), ServeSettings(**settings))
