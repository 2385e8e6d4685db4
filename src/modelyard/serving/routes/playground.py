"""GET /: the playground page, one self-contained HTML file (works offline, no external assets)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@cache
def _page() -> str:
    return files("modelyard.serving").joinpath("static/index.html").read_text(encoding="utf-8")


@router.get("/", include_in_schema=False)
async def playground() -> HTMLResponse:
    return HTMLResponse(_page())
