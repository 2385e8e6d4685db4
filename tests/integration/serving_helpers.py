"""Helpers for the serving tests: a TestClient around a real bundle, and reading /metrics."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings


@contextlib.contextmanager
def serving(bundle: Path, **settings) -> Iterator[TestClient]:
    """A started app (lifespan run: model loaded, warmed up, ready) for `bundle` with these settings."""
    app = create_app(str(bundle), ServeSettings(**settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def metric(client: TestClient, name: str, headers: dict | None = None) -> dict[str, float]:
    """Every sample of one metric family from /metrics, keyed by its label text (e.g. '{le="1.0"}')."""
    text = client.get("/metrics", headers=headers or {}).text
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", re.MULTILINE)
    return {labels or "": float(value) for labels, value in pattern.findall(text)}
