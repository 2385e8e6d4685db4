"""The `modelyard serve` command, kept beside the server; the top-level Typer app registers it."""

from __future__ import annotations

import gc
import os
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from modelyard.commands.console import warn
from modelyard.errors import ConfigError
from modelyard.serving.settings import ServeSettings, misnamed_environment

# settings whose option is not named after them (the rest: max_inputs -> --max-inputs)
OPTION_OF = {
    "timeout_s": "--timeout",
    "alias_poll_s": "--alias-poll",
    "drift_interval_s": "--drift-interval",
    "cors_origins": "--cors-origin",
    "api_key": "--api-key-env",
}
BOUNDS = {"less_than_equal": "at most", "greater_than_equal": "at least", "greater_than": "above", "less_than": "below"}


def _settings(overrides: dict[str, Any]) -> ServeSettings:
    """The server's settings. A bad value is one line naming where it came from: an option (a usage error, exit
    2) or its MODELYARD_* variable (exit 1), instead of pydantic's report."""
    try:
        return ServeSettings(**overrides)
    except ValidationError as error:
        problem = error.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else None
        bound = BOUNDS.get(problem["type"])
        said = (
            f"must be {bound} {next(iter(problem['ctx'].values()))}"
            if bound
            else problem["msg"].removeprefix("Value error, ").replace("Input should be", "must be", 1)
        )
        if field in overrides:
            raise typer.BadParameter(said, param_hint=OPTION_OF.get(field, "--" + field.replace("_", "-"))) from None
        raise ConfigError(f"{f'MODELYARD_{field.upper()}' if field else 'serve settings'}: {said}") from None


def serve(
    model: Annotated[str, typer.Argument(help="a bundle folder, models:/NAME@ALIAS, or an index folder")],
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1, loopback only)")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000)")] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="inputs per forward pass; 1 turns batching off (default 32)")
    ] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help="how long a batch waits to fill up (default 5)")] = None,
    max_queue: Annotated[
        int | None, typer.Option(help="inputs allowed to wait; beyond, 503 + Retry-After (default 1024)")
    ] = None,
    max_inputs: Annotated[int | None, typer.Option(help="inputs per request; beyond, 422 (default 64)")] = None,
    max_text_chars: Annotated[
        int | None, typer.Option(help="characters per text input or prompt; beyond, 422 (default 10000)")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="request body size; beyond, 413 (default 10485760: 10 MiB)")
    ] = None,
    max_top_k: Annotated[int | None, typer.Option(help="largest top_k (and search k) a request may ask")] = None,
    max_audio_seconds: Annotated[
        float | None, typer.Option(help="seconds of audio per request, all files together; beyond, 422 (default 1800)")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(help="messages per chat request; beyond, 422 (default 256)")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="server processes (default 1)")] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch threads per process (default: the cores, shared among workers)")
    ] = None,
    log_inputs: Annotated[
        bool | None, typer.Option("--log-inputs/--no-log-inputs", help="log inputs, or only their sha256 (default on)")
    ] = None,
    api_key_env: Annotated[
        str, typer.Option(help="environment variable holding the API key (clients send it as a Bearer token)")
    ] = "MODELYARD_API_KEY",
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="allow browser calls from this origin (repeatable); CORS is off otherwise"),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="seconds a prediction, decoding included, may take; beyond, 504 (default 30)")
    ] = None,
    rollout: Annotated[
        str | None, typer.Option(help="off | shadow | canary | bandit: how a challenger takes traffic (default off)")
    ] = None,
    challenger: Annotated[
        str | None, typer.Option(help="challenger bundle or models:/ URI (default models:/NAME@challenger)")
    ] = None,
    canary_percent: Annotated[
        float | None, typer.Option(help="share of inputs the canary challenger answers (default 10)")
    ] = None,
    alias_poll: Annotated[
        float | None, typer.Option(help="seconds between registry alias checks, 0 = never (default 30)")
    ] = None,
    drift_interval: Annotated[
        float | None, typer.Option(help="seconds between drift gauge updates on /metrics, 0 = never (default 300)")
    ] = None,
) -> None:
    """Serve a model over HTTP: playground at /, API docs at /docs, predictions at POST /v1/predict. An index
    folder (from `modelyard index`) answers POST /v1/search and POST /v1/embeddings instead. Each option can
    also be set as a MODELYARD_* variable named after its setting (MODELYARD_MAX_INPUTS=128, MODELYARD_TIMEOUT_S=60;
    docs/serving.md lists them); the option wins.

    Example: modelyard serve models:/banking-intents/latest --port 8000
    """
    given = {
        "host": host,
        "port": port,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "max_queue": max_queue,
        "max_inputs": max_inputs,
        "max_text_chars": max_text_chars,
        "max_body_bytes": max_body_bytes,
        "max_top_k": max_top_k,
        "max_audio_seconds": max_audio_seconds,
        "max_messages": max_messages,
        "workers": workers,
        "threads": threads,
        "timeout_s": timeout,
        "cors_origins": cors_origin or None,
        "rollout": rollout,
        "challenger": challenger,
        "canary_percent": canary_percent,
        "alias_poll_s": alias_poll,
        "drift_interval_s": drift_interval,
        "log_inputs": log_inputs,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    if api_key_env != "MODELYARD_API_KEY":
        if not os.environ.get(api_key_env):
            raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is empty or unset")
        overrides["api_key"] = os.environ[api_key_env]
    for message in misnamed_environment():
        warn(message)
    settings = _settings(overrides)
    from modelyard.bundle import hash_early

    if settings.workers == 1:  # this process loads the model: hash its files while the imports below run
        hash_early(model)
    # Importing torch and FastAPI allocates ~300k objects; collecting them meanwhile cost ~0.3 s of the start.
    # The app's lifespan freezes what startup built and turns collection back on once the model is warm.
    gc.disable()
    from modelyard.serving.run import run_server  # uvicorn and the model stack load only when serving

    run_server(model, settings)
