"""A server on `models:/NAME@champion` picks up an alias move without a restart and without failing requests."""

from __future__ import annotations

import threading
import time

import pytest
from serving_helpers import serving

from modelyard.tracking import registry
from modelyard.tracking.runs import log_bundle

pytestmark = pytest.mark.slow


def test_an_alias_move_is_served_without_restart_or_dropped_requests(tfidf_bundle):
    first, second = log_bundle(tfidf_bundle), log_bundle(tfidf_bundle)
    name = first.name
    registry.promote(name, first.version, "champion", "first")
    statuses: list[int] = []
    with serving(f"models:/{name}@champion", alias_poll_s=0.2, drift_interval_s=0) as client:
        assert client.get("/v1/model").json()["version"] == str(first.version)
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                statuses.append(client.post("/v1/predict", json={"inputs": ["where is my card"]}).status_code)

        worker = threading.Thread(target=traffic)
        worker.start()
        registry.promote(name, second.version, "champion", "second")
        deadline = time.monotonic() + 30
        while client.get("/v1/model").json()["version"] != str(second.version) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        worker.join()
        answer = client.post("/v1/predict", json={"inputs": ["where is my card"]}).json()
    assert answer["predictions"][0]["version"] == str(second.version)
    assert statuses and set(statuses) == {200}
