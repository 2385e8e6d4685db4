"""The app factory: `create_app(model_ref, settings)` wires settings, guards, routes and the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from modelyard import model_thread
from modelyard.bundle import MANIFEST, read_manifest
from modelyard.protocols import reads_text
from modelyard.retrieval.index import is_index
from modelyard.serving import rollout
from modelyard.serving.errors import install_error_handlers
from modelyard.serving.head import HeadAsGetMiddleware
from modelyard.serving.metrics import MetricsMiddleware, ServerMetrics
from modelyard.serving.routes import docs, explain, feedback, health, playground
from modelyard.serving.routes.predict import predict_router
from modelyard.serving.schemas import is_binary_input, predict_request_model
from modelyard.serving.security import BodyLimitMiddleware
from modelyard.serving.service import ModelService
from modelyard.serving.settings import ServeSettings
from modelyard.tasks import get_task

log = logging.getLogger(__name__)
WARM_UP_TEXT = "warm-up request"


def _task_from_manifest(model_ref: str) -> Any | None:
    """The task named in a bundle's manifest (and its config, which `load` follows), read without loading weights;
    None for registry URIs."""
    from modelyard.loader import bundle_config

    path = Path(model_ref).expanduser()
    if not (path / MANIFEST).is_file():
        return None
    return get_task(bundle_config(path, read_manifest(path)).task)


def _warm_up_example(task: Any, learner: Any, binary: bool) -> Any | None:
    example = getattr(task, "example_input", None)
    if callable(example):  # an example that depends on the model (a forecaster's covariates)
        example = example(learner)
    if example is None and reads_text(task.Input) and not binary:
        example = WARM_UP_TEXT
    return example


def _settle_heap() -> None:
    """When `modelyard serve` turned the garbage collector off for its imports: move everything startup built
    (libraries, model) out of the collector's sight, then turn it back on. Full collections then skip those ~300k
    objects, so none stalls requests for ~100 ms; the few cyclic leftovers of startup stay, once."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _watch_drift(service: ModelService, settings: ServeSettings) -> list[Any]:
    """The drift gauges start beside a serving model; if they cannot, predictions still go on."""
    try:
        return rollout.watch_drift(service, settings)
    except Exception:
        log.exception("the drift gauges could not start")
        return []


def _document_open_access(app: FastAPI) -> None:
    """Without an API key no route needs one: drop the Bearer scheme from the OpenAPI document, so clients
    and schema-driven fuzzers see the truth."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schema.get("components", {}).pop("securitySchemes", None)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.pop("security", None)
                operation.get("responses", {}).pop("401", None)
        return schema

    app.openapi = openapi


def create_app(model_ref: str, settings: ServeSettings | None = None) -> FastAPI:
    """A server for one model (a bundle path or models:/NAME@ALIAS). The model loads in the lifespan, so
    /readyz answers 200 only once it is loaded and warmed up."""
    from modelyard.loader import load

    settings = settings or ServeSettings()
    if is_index(model_ref):  # a folder from `modelyard index`: search and embeddings instead of predictions
        from modelyard.serving.retrieval import create_index_app

        return guarded(create_index_app(model_ref, settings), settings)
    preloaded = None
    task = _task_from_manifest(model_ref)
    if task is None:  # a registry URI: resolving it is loading it, so do it once, here
        preloaded = model_thread.call(load, model_ref)
        task = preloaded.task if not isinstance(preloaded.task, str) else get_task(preloaded.task)
    binary = is_binary_input(task.Input)
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = preloaded or await model_thread.run(load, model_ref)
        service = ModelService(model, settings, metrics)
        example = _warm_up_example(task, model.learner, binary)
        if example is not None:
            await model_thread.run(service.warm_up, example)
        service.start()
        beside = await model_thread.run(rollout.attach, service, model_ref, settings, example)
        _settle_heap()
        app.state.service = service
        drift = asyncio.get_running_loop().run_in_executor(None, _watch_drift, service, settings)
        log.info("serving %s version %s", service.name, service.version)
        try:
            yield
        finally:
            app.state.service = None  # /readyz says no while in-flight work drains
            await service.stop()
            beside += await drift
            await asyncio.to_thread(rollout.detach, beside)

    app = FastAPI(
        title="modelyard model server",
        summary="Predictions from one modelyard model bundle",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # routes.docs serves Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(playground.router)
    app.include_router(docs.router)
    app.include_router(predict_router(predict_request_model(task.Input, settings), task.Input, binary, settings))
    app.include_router(feedback.router)
    app.include_router(explain.router)
    if getattr(task, "assists", False):  # grounded chat: retrieval, citations, declines, hand-over, memory
        from modelyard.serving import assistant_routes

        app.include_router(assistant_routes.router)
    if getattr(task, "generates_text", False):
        from modelyard.serving import openai_routes

        app.include_router(openai_routes.router)
    if getattr(task, "transcribes_audio", False):
        from modelyard.serving import transcription_routes

        app.include_router(transcription_routes.router)
    return guarded(app, settings)


def guarded(app: FastAPI, settings: ServeSettings) -> FastAPI:
    """The middleware every server shares: request metrics, the body limit, CORS when asked, HEAD wherever GET
    answers, and an OpenAPI document without the key scheme when no key is set."""
    if not settings.api_key:
        _document_open_access(app)
    app.add_middleware(HeadAsGetMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
