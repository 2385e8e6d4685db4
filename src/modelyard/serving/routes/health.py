"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelyard.serving.errors import error_response
from modelyard.serving.security import require_api_key

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the model is loaded and warmed up", response_model=None)
async def readyz(request: Request) -> dict[str, str] | Response:
    service = getattr(request.app.state, "service", None)
    if service is None:
        return error_response(503, "the model is loading or the server is shutting down", {"Retry-After": "1"})
    return {"status": "ready", "model": service.name, "version": service.version}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
