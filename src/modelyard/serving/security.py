"""API key check and request body limit: the two guards in front of every route."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.serving.errors import ServingError, error_response

_bearer = HTTPBearer(auto_error=False, description="the key in MODELYARD_API_KEY, when the server has one")


async def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """401 unless the Bearer token equals the configured key (constant-time); open when no key is set."""
    expected: str | None = request.app.state.settings.api_key
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise ServingError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": "Bearer"},
        )


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: refused from Content-Length up front, or counted while streaming.

    The streaming case raises an HTTPException inside `receive`, which FastAPI re-raises from body parsing, so
    the JSON error handler answers it like any other error.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status = 413 if declared.isdigit() else 400
            message = self._message() if status == 413 else "Content-Length is not a number"
            await error_response(status, message)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body over the {self.max_bytes} byte limit; send fewer or smaller inputs"
