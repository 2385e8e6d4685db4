"""Serving a registered model by URI: the answers carry the registry version, not a content hash."""

from __future__ import annotations

import pytest
from serving_helpers import serving


@pytest.mark.slow
def test_a_registry_uri_is_served_with_its_version_number(tfidf_bundle):
    from modelyard.tracking.runs import log_bundle

    version = log_bundle(tfidf_bundle)
    with serving(f"models:/{version.name}/{version.version}") as client:
        info = client.get("/v1/model").json()
        answer = client.post("/v1/predict", json={"inputs": ["my card has not arrived"]}).json()
    assert info["version"] == str(version.version) and info["name"] == version.name
    assert answer["model"] == {"name": version.name, "version": str(version.version)}
