"""The Python API: `train`, `load`, `validate`, and the `Model` they return (`predict`, `evaluate`).

Few verbs, the same for every task, no hidden global state (scikit-learn's estimator API is the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from modelyard.config import Config
from modelyard.errors import ConfigError
from modelyard.loader import Model, load
from modelyard.pipeline import default_output, latest_unfinished, train
from modelyard.privacy.scan import add_pii_report, warn_literal_salt
from modelyard.protocols import PreparedData
from modelyard.tasks import as_config, check_evaluation, get_task

if TYPE_CHECKING:
    from modelyard.learners.label_noise import LabelNoiseResult

__all__ = ["Model", "default_output", "latest_unfinished", "load", "serve", "train", "validate", "validate_stream"]


def validate(config: Config | dict[str, Any] | str | Path, overrides: Sequence[str] = ()) -> PreparedData:
    """Read, clean and split the data exactly as `train` would, and report; trains nothing."""
    from modelyard.learners.label_noise import check_audit_rows, check_label_noise
    from modelyard.training import privacy
    from modelyard.training.callbacks import check_early_stopping

    config = as_config(config, overrides)
    task = get_task(config.task)
    check_label_noise(task, config)  # data.label_noise: refused here as `train` would
    check_early_stopping(task, config)  # train.early_stopping.metric: refused here as `train` would
    check_evaluation(task, config)  # evaluation keys the task never reads: refused here as `train` would
    if config.tune is not None:
        from modelyard.tuning import check_params

        check_params(config)  # tune.params and tune.metric: refused here as `tune` would
    data = task.prepare(config)
    if config.data.label_noise is not None:
        check_audit_rows(data.splits["train"])  # the audit itself runs in `train` or `validate --audit-labels`
    privacy.check(config, task, len(data.splits["train"]))  # train.privacy: refused here as `train` would
    if config.tune is not None and config.tune.params:
        from modelyard.tuning import check_prepared

        check_prepared(config, task)  # each searched value as `tune` prepares it
    add_pii_report(config, data)
    warn_literal_salt(config, data)
    return data


def audit_labels(
    config: Config | dict[str, Any] | str | Path, overrides: Sequence[str] = (), data: PreparedData | None = None
) -> LabelNoiseResult:
    """Rank the training split's rows by how likely their label is wrong (confident learning on out-of-fold
    probabilities, docs/label_noise.md); `data` is the split `validate` already prepared, if any."""
    config = as_config(config, overrides)
    task = get_task(config.task)
    if not hasattr(task, "audit_labels"):
        raise ConfigError(f"--audit-labels: task '{config.task}' has no label audit (text_classification has one)")
    return task.audit_labels(config, data if data is not None else task.prepare(config))


def validate_stream(config: Config | dict[str, Any] | str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Check data files too large to hold in one streaming pass each (rows, skips, empty values, labels,
    duplicates, lengths, sha256), in bounded memory; splits and tokenizer coverage need `validate`."""
    from modelyard.data.streaming import scan

    config = as_config(config, overrides)
    return scan(config.data)


def serve(model: str | Path, **settings: Any) -> None:
    """Serve a bundle or `models:/NAME@ALIAS` over HTTP until SIGTERM (settings: host, port, max_batch_size, ...)."""
    from modelyard.serving.run import run_server
    from modelyard.serving.settings import ServeSettings

    try:
        chosen = ServeSettings(**settings)
    except ValidationError as err:
        raise ConfigError("; ".join(f"serve: {e['msg']}" for e in err.errors())) from None
    run_server(str(model), chosen)
