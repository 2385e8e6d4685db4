"""Schema-driven fuzzing of the live server (Schemathesis strategies): no valid-shaped input gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from serving_live import live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tfidf_bundle):
    with live_server(tfidf_bundle, max_inputs=8) as url:
        yield url


def test_no_generated_request_gets_a_server_error(server):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/v1/predict" for op in operations)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(timeout=30)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code}"
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}

        check()
