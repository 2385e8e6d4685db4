"""`modelyard serve` option handling, checked before any server starts."""

from __future__ import annotations

import pytest
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
    assert result.exit_code == 2 and "--max-batch-size: must be at least 1" in " ".join(result.stderr.split())


def test_a_queue_smaller_than_one_full_request_is_refused_naming_both_options():
    result = CliRunner().invoke(app, ["serve", "bundle", "--max-queue", "10"])
    said = " ".join(str(result.exception).split())
    assert isinstance(result.exception, ConfigError)
    assert "max_queue (10) is below max_inputs (64)" in said and "--max-queue" in said and "--max-inputs" in said


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


def test_options_override_the_environment_and_every_limit_has_an_option(monkeypatch):
    from modelyard.serving import run

    seen = {}
    monkeypatch.setattr(run, "run_server", lambda model, settings: seen.update(settings=settings))
    monkeypatch.setenv("MODELYARD_LOG_INPUTS", "false")
    monkeypatch.setenv("MODELYARD_MAX_INPUTS", "8")
    args = ["--log-inputs", "--max-text-chars", "500", "--max-body-bytes", "2048", "--max-top-k", "5"]
    result = CliRunner().invoke(app, ["serve", "bundle", *args, "--drift-interval", "0"])
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    assert settings.log_inputs is True and settings.max_inputs == 8  # the option wins; the environment fills in
    assert (settings.max_text_chars, settings.max_body_bytes, settings.max_top_k) == (500, 2048, 5)
    assert settings.drift_interval_s == 0


def test_every_server_setting_is_documented_with_its_environment_variable():
    from pathlib import Path

    from modelyard.serving.settings import ServeSettings

    table = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text(encoding="utf-8")
    missing = [name for name in ServeSettings.model_fields if f"`MODELYARD_{name.upper()}`" not in table]
    assert missing == []


def test_a_server_that_logs_no_predictions_still_refuses_an_unreachable_state_store_before_loading(monkeypatch):
    from modelyard import state
    from modelyard.serving import run
    from modelyard.serving.settings import ServeSettings

    monkeypatch.setenv(state.ENV, "postgresql://modelyard:s3cret@127.0.0.1:1/modelyard")
    monkeypatch.setattr(run, "_check_model", lambda ref: pytest.fail("the model was checked before the state store"))
    settings = ServeSettings(log_predictions=False, port=18203)
    with pytest.raises(state.StateUnavailable, match=r"cannot connect to postgresql://modelyard:\*\*\*@127\.0\.0\.1:1"):
        run.run_server("bundle", settings)


def test_a_variable_named_after_the_option_not_the_setting_is_named_with_the_one_to_use():
    from modelyard.serving.settings import misnamed_environment

    environ = {"MODELYARD_TIMEOUT": "60", "MODELYARD_ALIAS_POLL": "5", "MODELYARD_HOME": "/x", "MODELYARD_PORT": "9"}
    assert misnamed_environment(environ) == [
        "MODELYARD_ALIAS_POLL is not a server setting and is ignored; did you mean MODELYARD_ALIAS_POLL_S?",
        "MODELYARD_TIMEOUT is not a server setting and is ignored; did you mean MODELYARD_TIMEOUT_S?",
    ]
