"""/docs works offline: Swagger UI's script, style sheet and icon come from the server itself, pinned."""

from __future__ import annotations

import re

from serving_helpers import serving


def test_the_api_docs_page_loads_only_assets_served_by_the_model_server(tfidf_bundle):
    with serving(tfidf_bundle, drift_interval_s=0) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
        assert urls and not [u for u in urls if "//" in u], f"remote assets on /docs: {urls}"
        assets = {u: client.get(u) for u in urls}
        redoc = client.get("/redoc")
    assert {u: r.status_code for u, r in assets.items()} == dict.fromkeys(urls, 200)
    script = next(r for u, r in assets.items() if u.endswith("swagger-ui-bundle.js"))
    assert "javascript" in script.headers["content-type"] and "SwaggerUIBundle" in script.text
    assert redoc.status_code == 404
