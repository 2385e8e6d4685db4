"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from modelyard.serving.errors import ServingError
from modelyard.serving.service import ModelService


async def get_service(request: Request) -> ModelService:
    """The loaded model, or 503 while it loads or after shutdown began (async: no thread hop per request)."""
    service: ModelService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ServingError(503, "the model is not ready yet", {"Retry-After": "1"})
    return service
