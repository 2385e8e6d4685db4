"""`modelyard serve` option handling, checked before any server starts."""

from __future__ import annotations

from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.errors import ConfigError


def test_serve_is_listed_with_its_options():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--max-batch-size", "--max-wait-ms", "--no-log-inputs", "--api-key-env", "--cors-origin"):
        assert option in result.output


def test_an_empty_api_key_variable_is_refused(monkeypatch):
    monkeypatch.delenv("MY_SERVING_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "bundle", "--api-key-env", "MY_SERVING_KEY"])
    assert isinstance(result.exception, ConfigError) and "MY_SERVING_KEY" in str(result.exception)


def test_invalid_limits_are_refused_with_the_option_named():
    result = CliRunner().invoke(app, ["serve", "bundle", "--max-batch-size", "0"])
    assert isinstance(result.exception, ConfigError) and "max_batch_size" in str(result.exception)


def test_worker_processes_share_the_cores_instead_of_each_taking_all(monkeypatch):
    from modelyard.serving import run
    from modelyard.serving.settings import ServeSettings

    monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert run.model_threads(ServeSettings()) == 16
    assert run.model_threads(ServeSettings(workers=4)) == 4
    assert run.model_threads(ServeSettings(threads=2)) == 2
    monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: {0, 1})
    assert run.model_threads(ServeSettings(workers=3)) == 1


def test_without_cpu_affinity_the_workers_share_every_core(monkeypatch):
    """macOS and Windows have no sched_getaffinity: the server counts the machine's cores instead of failing."""
    from modelyard.serving import run
    from modelyard.serving.settings import ServeSettings

    monkeypatch.delattr(run.os, "sched_getaffinity")
    monkeypatch.setattr(run.os, "cpu_count", lambda: 8)
    assert run.model_threads(ServeSettings(workers=2)) == 4
