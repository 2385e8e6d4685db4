"""Batching and back-pressure over HTTP: merged forward passes, 503 when full, 504, hidden 500s."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from serving_helpers import metric, serving

from modelyard.monitoring.prediction_log import read_predictions


def post_concurrently(client, count: int) -> list[int]:
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda i: client.post("/v1/predict", json={"inputs": [f"card {i}"]}), range(count)))
    return [r.status_code for r in responses]


def batch_sizes(client) -> tuple[float, float]:
    """(number of batches, number of inputs) from the batch-size histogram."""
    return metric(client, "modelyard_batch_size_count")[""], metric(client, "modelyard_batch_size_sum")[""]


def test_concurrent_requests_are_merged_into_fewer_forward_passes(tfidf_bundle):
    with serving(tfidf_bundle, max_batch_size=32, max_wait_ms=100) as client:
        before_batches, before_inputs = batch_sizes(client)
        assert post_concurrently(client, 16) == [200] * 16
        batches, inputs = batch_sizes(client)
    assert inputs - before_inputs == 16
    assert batches - before_batches < 16


def test_max_batch_size_one_runs_every_input_alone(tfidf_bundle):
    with serving(tfidf_bundle, max_batch_size=1, max_wait_ms=100) as client:
        assert post_concurrently(client, 6) == [200] * 6
        buckets = metric(client, "modelyard_batch_size_bucket")
    assert buckets['{le="1.0"}'] == buckets['{le="+Inf"}']


def test_requests_are_counted_by_route_and_status(tfidf_bundle):
    with serving(tfidf_bundle) as client:
        client.post("/v1/predict", json={"inputs": ["hello"]})
        client.post("/v1/predict", json={"inputs": []})
        client.get("/a/fuzzed/path/123")
        counts = metric(client, "modelyard_requests_total")
    assert counts['{method="POST",route="/v1/predict",status="200"}'] == 1
    assert counts['{method="POST",route="/v1/predict",status="422"}'] == 1
    assert counts['{method="GET",route="unmatched",status="404"}'] == 1


def hold_predictions(client) -> tuple[threading.Event, threading.Event]:
    """Make the model block until `release` is set; `entered` is set once a prediction is blocked."""
    entered, release = threading.Event(), threading.Event()
    batcher = client.app.state.service.batcher
    real = batcher.predict

    def blocked(inputs, top_k):
        entered.set()
        release.wait(10)
        return real(inputs, top_k)

    batcher.predict = blocked
    return entered, release


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_full_queue_answers_503_with_retry_after(tfidf_bundle):
    with serving(tfidf_bundle, max_batch_size=1, max_wait_ms=0, max_queue=2, max_inputs=2) as client:
        entered, release = hold_predictions(client)
        batcher = client.app.state.service.batcher
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(client.post, "/v1/predict", json={"inputs": ["first"]})
            assert entered.wait(10)  # the worker is busy with "first"
            queued = pool.submit(client.post, "/v1/predict", json={"inputs": ["second", "third"]})
            wait_until(lambda: batcher.pending == 2)
            refused = client.post("/v1/predict", json={"inputs": ["fourth"]})
            release.set()
            assert running.result().status_code == 200 and queued.result().status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "unavailable"


async def post_then_disconnect(app, text: str, waiting: Callable[[], bool]) -> int:
    """POST /v1/predict straight to the ASGI app; the client disconnects once `waiting()`; the status sent."""
    body = json.dumps({"inputs": [text]}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predict",
        "raw_path": b"/v1/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        if messages:
            return messages.pop()
        while not waiting():
            await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"]


def test_a_request_whose_client_disconnects_is_dropped_unrun_unlogged_and_counted_as_499(tfidf_bundle):
    with serving(tfidf_bundle, max_batch_size=1, max_wait_ms=0) as client:
        entered, release = hold_predictions(client)
        batcher = client.app.state.service.batcher
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(client.post, "/v1/predict", json={"inputs": ["first"]})
            assert entered.wait(10)  # the worker is busy with "first"
            status = client.portal.call(post_then_disconnect, client.app, "never answered", lambda: batcher.pending)
            assert batcher.pending == 0  # its queue slot is free at once, not once the worker reaches it
            release.set()
            assert running.result().status_code == 200
        counts = metric(client, "modelyard_requests_total")
        answered = metric(client, "modelyard_predictions_total")[""]
    assert status == 499 and counts['{method="POST",route="/v1/predict",status="499"}'] == 1
    assert counts['{method="POST",route="/v1/predict",status="200"}'] == 1 and answered == 1
    assert list(read_predictions()["input"]) == ['"first"']


def test_a_prediction_over_the_timeout_answers_504_and_is_not_counted_as_answered(tfidf_bundle):
    with serving(tfidf_bundle, timeout_s=0.2) as client:
        _, release = hold_predictions(client)
        response = client.post("/v1/predict", json={"inputs": ["slow"]})
        release.set()
    # the app has drained its batcher: the batch ran on, yet its input was never answered
    assert client.app.state.metrics.registry.get_sample_value("modelyard_predictions_total") == 0
    assert response.status_code == 504 and response.json()["error"]["type"] == "timeout"
    assert (
        "longer than 0.2 s" in response.json()["error"]["message"]
        and "--timeout" in response.json()["error"]["message"]
    )


def test_a_model_crash_answers_500_without_internals(tfidf_bundle):
    with serving(tfidf_bundle) as client:

        def crash(inputs, top_k):
            raise RuntimeError("secret detail at /srv/models/weights.bin")

        client.app.state.service.batcher.predict = crash
        response = client.post("/v1/predict", json={"inputs": ["boom"]})
    assert response.status_code == 500
    assert response.json() == {"error": {"type": "internal_error", "message": "prediction failed"}}


def test_loading_warm_up_and_batches_of_a_minilm_server_run_on_one_thread(minilm_bundle, monkeypatch):
    # libgomp throttles its spinning once two threads have opened parallel regions (see modelyard.model_thread)
    import modelyard.loader
    from modelyard.learners.text import TextClassifierLearner

    seen: list[tuple[str, str]] = []

    def spy(what, fn):
        def wrapped(*args, **kwargs):
            seen.append((what, threading.current_thread().name))
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(modelyard.loader, "load", spy("load", modelyard.loader.load))
    monkeypatch.setattr(TextClassifierLearner, "predict_proba", spy("predict", TextClassifierLearner.predict_proba))
    with serving(minilm_bundle, drift_interval_s=0, log_predictions=False) as client, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: client.post("/v1/predict", json={"inputs": [t]}), ["card", "fee"] * 4))
    assert [a.status_code for a in answers] == [200] * 8
    assert {what for what, _ in seen} == {"load", "predict"} and len(seen) >= 3  # load, warm-up, batches
    assert {thread for _, thread in seen} == {"modelyard-model_0"}, seen


def test_a_minilm_server_runs_mixed_length_requests_in_one_forward_pass(minilm_bundle, monkeypatch):
    # its BERT attends per length bucket inside the forward pass, so cutting the batch would only add passes
    from modelyard.learners.text import TextClassifierLearner

    sizes: list[int] = []
    original = TextClassifierLearner.predict_proba
    monkeypatch.setattr(
        TextClassifierLearner, "predict_proba", lambda self, t: sizes.append(len(t)) or original(self, t)
    )
    texts = ["card"] * 8 + ["why was I charged a fee for withdrawing cash from an ATM abroad last week " * 3] * 8
    with serving(minilm_bundle, drift_interval_s=0, log_predictions=False, max_wait_ms=200) as client:
        assert client.app.state.service.batcher.split_by_length is False
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda t: client.post("/v1/predict", json={"inputs": [t]}), texts))
    assert [a.status_code for a in answers] == [200] * 16
    assert max(sizes) > 8, sizes  # short and long requests shared a forward pass
