"""GET /docs: Swagger UI from files shipped in the package (swagger-ui-dist 5.35.0, Apache-2.0, see
static/swagger-ui/SOURCE.md), so the API docs work offline and run no third-party script on the server's origin."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from modelyard.serving.errors import ServingError

router = APIRouter(include_in_schema=False)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


@cache
def _asset(name: str) -> bytes:
    return files("modelyard.serving").joinpath(f"static/swagger-ui/{name}").read_bytes()


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png",
    )


@router.get("/docs/assets/{name}")
async def swagger_asset(name: str) -> Response:
    if name not in ASSETS:
        raise ServingError(404, f"no docs asset named {name!r}")
    return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})
