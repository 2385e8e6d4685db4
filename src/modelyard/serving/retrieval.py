"""Serving an index folder (`modelyard serve INDEX`): POST /v1/search over its chunks and OpenAI-shaped
POST /v1/embeddings from its encoder, beside the shared health, metrics, docs and error handling.

The official `openai` client's `embeddings.create` works against `base_url=http://HOST:PORT/v1`; it asks for
base64 by default (little-endian float32, as OpenAI sends). Beyond OpenAI's fields, `input_type` says whether
texts are queries or passages: E5 encoders embed them with different prefixes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard import model_thread
from modelyard.data.blank import is_blank
from modelyard.retrieval.index import MANIFEST, Index
from modelyard.serving.errors import ServingError, install_error_handlers
from modelyard.serving.metrics import ServerMetrics
from modelyard.serving.routes import docs, health
from modelyard.serving.security import require_api_key
from modelyard.serving.settings import ServeSettings

log = logging.getLogger(__name__)


@dataclass
class IndexService:
    """What the routes call: the loaded index, its name (the folder's) and version (its manifest's digest)."""

    index: Index
    name: str
    version: str

    @property
    def models(self) -> set[str]:
        return {self.name, self.index.manifest["encoder"]}


async def get_index(request: Request) -> IndexService:
    service: IndexService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ServingError(503, "the index is not ready yet", {"Retry-After": "1"})
    return service


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send `user`

    input: str | list[str] = Field(..., description="one text or several")
    model: str = Field(..., description="the index's encoder (e.g. minilm-l6) or the index's name")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="must equal the encoder's size when given")
    input_type: Literal["query", "passage"] = Field(
        "query", description="E5 encoders prefix queries and passages differently; others ignore it"
    )


class SearchRequest(BaseModel):
    query: str = Field(..., min_length=1)
    k: int = Field(5, ge=1)
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


def _check_text(text: str, field: str, settings: ServeSettings) -> None:
    """One text within the server's limits; `field` names it in the 422 message."""
    if is_blank(text):  # blank text embeds to an arbitrary point: its "nearest" chunks mean nothing
        raise ServingError(
            422, f"{field}: empty text" if not text else f"{field}: blank text (only spaces or zero-width characters)"
        )
    if len(text) > settings.max_text_chars:
        raise ServingError(422, f"{field}: {len(text)} characters; at most {settings.max_text_chars}")


def _check_texts(texts: list[str], settings: ServeSettings) -> None:
    if not texts:
        raise ServingError(422, "input: give at least one text")
    if len(texts) > settings.max_inputs:
        raise ServingError(422, f"input: {len(texts)} texts; at most {settings.max_inputs} per request")
    for i, text in enumerate(texts):
        _check_text(text, f"input.{i}", settings)


router = APIRouter(prefix="/v1", tags=["retrieval"], dependencies=[Depends(require_api_key)])


@router.post("/embeddings", summary="Embed texts with the index's encoder (OpenAI-compatible)")
async def embeddings(body: EmbeddingRequest, request: Request, service: IndexService = Depends(get_index)):
    if body.model not in service.models:
        raise ServingError(404, f"no model named '{body.model}' is served here; use one of {sorted(service.models)}")
    embedder = service.index.embedder
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise ServingError(422, f"dimensions: {body.model} embeds in {embedder.dim} dimensions only")
    texts = [body.input] if isinstance(body.input, str) else body.input
    _check_texts(texts, request.app.state.settings)
    vectors = await model_thread.run(embedder.embed, texts, body.input_type)
    tokens = sum(await model_thread.run(embedder.token_counts, texts, body.input_type))
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(vector, body.encoding_format)}
        for i, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


@router.post("/search", summary="The k chunks that best answer a query: hybrid (default), dense or bm25")
async def search(body: SearchRequest, request: Request, service: IndexService = Depends(get_index)):
    settings: ServeSettings = request.app.state.settings
    if body.k > settings.max_top_k:
        raise ServingError(422, f"k: {body.k}; at most {settings.max_top_k}")
    _check_text(body.query, "query", settings)
    hits = (await model_thread.run(service.index.search, [body.query], body.k, body.mode))[0]
    return {"results": [asdict(h) for h in hits], "mode": body.mode, "index": {"name": service.name}}


@router.get("/model", summary="The index served: encoder, chunking, files and chunks")
async def model_info(service: IndexService = Depends(get_index)) -> dict[str, Any]:
    manifest = service.index.manifest
    keys = ("kind", "encoder", "dim", "chunk_size", "overlap", "chunks", "created")
    return {"name": service.name, "version": service.version, **{k: manifest.get(k) for k in keys}} | {
        "files": len(manifest.get("files", {}))
    }


@router.get("/models", summary="The encoder served here (OpenAI-compatible list)")
async def list_models(service: IndexService = Depends(get_index)) -> dict[str, Any]:
    encoder = service.index.manifest["encoder"]
    return {"object": "list", "data": [{"id": encoder, "object": "model", "owned_by": "modelyard", "created": 0}]}


def create_index_app(folder: str, settings: ServeSettings) -> FastAPI:
    """A server for one index folder (app.create_app adds the shared middleware); the index and its encoder
    load, and embed once, before /readyz says yes."""
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        index = await model_thread.run(Index.load, folder)
        await model_thread.run(index.search, ["warm-up query"], 1, "hybrid")
        digest = hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest()
        service = IndexService(index, Path(folder).resolve().name, f"sha256:{digest[:12]}")
        metrics.model.info({"name": service.name, "version": service.version, "task": "retrieval"})
        app.state.service = service
        log.info("serving index %s (%d chunks)", service.name, len(index.rows))
        try:
            yield
        finally:
            app.state.service = None

    app = FastAPI(
        title="modelyard index server",
        summary="Search and embeddings from one modelyard index",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(router)
    return app
