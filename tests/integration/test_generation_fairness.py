"""A long generation shares the model thread: /v1/predict requests behind it are answered before it ends."""

from __future__ import annotations

import threading
import time

import pytest
from serving_helpers import serving

pytestmark = pytest.mark.slow  # 400 greedy tokens: seconds, more on a busy machine


def test_a_prediction_is_answered_while_a_long_generation_still_runs(tiny_gpt_bundle):
    with serving(tiny_gpt_bundle, timeout_s=600, drift_interval_s=0, log_predictions=False) as client:
        statuses: list[int] = []

        def generate() -> None:  # greedy: this model never stops early, so all 400 tokens are decoded
            body = {"prompt": "ROMEO:", "max_tokens": 400, "temperature": 0}
            statuses.append(client.post("/v1/completions", json=body).status_code)

        worker = threading.Thread(target=generate)
        worker.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the generation holds the model thread
            batcher = getattr(client.app.state, "generation_batcher", None)
            if batcher is not None and batcher.batch_sizes:
                break
            time.sleep(0.01)
        response = client.post("/v1/predict", json={"inputs": ["KING:"]})
        generation_still_running = worker.is_alive()
        worker.join()
    assert response.status_code == 200 and statuses == [200]
    assert generation_still_running
