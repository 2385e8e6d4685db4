"""Run the app under uvicorn: one process, or several workers that each load the (read-only) bundle."""

from __future__ import annotations

import gc
import os
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from modelyard import state
from modelyard.cores import usable_cores
from modelyard.errors import ConfigError, UserError
from modelyard.loader import check
from modelyard.retrieval.index import is_index, read_index
from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings

_MODEL_ENV = "MODELYARD_SERVE_MODEL"
_SETTINGS_ENV = "MODELYARD_SERVE_SETTINGS"


def model_threads(settings: ServeSettings) -> int:
    """Torch threads for one server process: the cores it may use, shared among the workers. More threads than
    free cores make OpenMP threads wait on each other: on a machine busy with other work, `--threads` lower
    (e.g. 1 on 2 cores shared with other jobs) keeps the forward passes from stalling."""
    if settings.threads:
        return settings.threads
    return max(1, usable_cores() // settings.workers)


def _use_threads(settings: ServeSettings) -> None:
    import torch

    torch.set_num_threads(model_threads(settings))


def app_from_environment() -> FastAPI:
    """The factory each worker process calls (uvicorn imports it by name)."""
    settings = ServeSettings.model_validate_json(os.environ[_SETTINGS_ENV])
    _use_threads(settings)
    return create_app(os.environ[_MODEL_ENV], settings)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor of the workers, except that SIGTERM or SIGINT closes its own copy of the listening
    socket at once: uvicorn keeps it open until every worker has drained, so the kernel would go on accepting
    connections that no process reads, reset only when it exits. Refused instead, a client retries elsewhere."""

    def handle_term(self) -> None:
        self._stop_listening()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_listening()
        super().handle_int()

    def _stop_listening(self) -> None:
        for sock in self.sockets:  # the workers close theirs as they start draining
            sock.close()


def _check_port(host: str, port: int) -> None:
    """Refuse a taken address before the model loads (minutes for a large one), not after."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
            probe.bind(address)
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror or err}",
            "another server may hold the port: choose one with --port (or MODELYARD_PORT)",
        ) from None


def _check_model(model_ref: str) -> None:
    """The bundle (or registry URI) loading would refuse, refused with its message before any worker starts; one
    server process then loads it without hashing its files again."""
    if is_index(model_ref):
        read_index(Path(model_ref))
    else:
        check(model_ref)


def run_server(model_ref: str, settings: ServeSettings | None = None, port: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT; uvicorn then stops accepting, finishes requests in flight, and the lifespan
    drains the batcher and the prediction log. `port` overrides the settings' port (for `quickstart`). A taken
    port, a bad or unreachable state store, a bad bundle, or a server that fails to start (in any worker) is a
    UserError: exit code 1."""
    settings = settings or ServeSettings()
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    _check_port(settings.host, settings.port)
    # a bad MODELYARD_STATE_URI, or a database down, named before the model loads: /v1/feedback needs the store
    # even when predictions are not logged here (another replica may log them)
    state.check()
    _check_model(model_ref)
    url = f"http://{settings.host}:{settings.port}"
    print(f"modelyard: serving {model_ref} at {url} (playground {url}/, API docs {url}/docs)", file=sys.stderr)
    options = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,  # /metrics and the prediction log already record every request
        "timeout_graceful_shutdown": int(settings.timeout_s) + 5,
        "log_level": "info",
    }
    if settings.workers > 1:
        gc.enable()  # the workers load the model; this supervising process keeps collecting as usual
        os.environ[_MODEL_ENV] = model_ref
        os.environ[_SETTINGS_ENV] = settings.model_dump_json()
        config = uvicorn.Config(
            f"{__name__}:app_from_environment",
            factory=True,
            workers=settings.workers,
            timeout_worker_healthcheck=120,  # a worker imports torch and loads the model before it answers
            **options,
        )
        supervisor = _Supervisor(config, sockets=[config.bind_socket()])
        supervisor.run()
        if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
            raise UserError("a server worker failed to start (its error is above); the server stopped")
    else:
        _use_threads(settings)
        server = uvicorn.Server(uvicorn.Config(create_app(model_ref, settings), **options))
        try:
            server.run()
        except SystemExit as stop:  # uvicorn's way of saying the app (the model's load) failed to start
            if stop.code != STARTUP_FAILURE:
                raise
            raise UserError("the server failed to start (its error is above)") from None
