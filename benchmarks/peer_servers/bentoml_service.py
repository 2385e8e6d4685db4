"""The bundle's MiniLM classifier as a BentoML service with adaptive batching (run by benchmarks/peer_serving.py).

    PEER_BUNDLE=BUNDLE PEER_MAX_BATCH=32 PEER_MAX_LATENCY_MS=1000 \
        bentoml serve bentoml_service:MiniLM --working-dir benchmarks/peer_servers --host 127.0.0.1 --port 3000

POST /v1/predict {"inputs": ["text", ...]}: BentoML concatenates the lists of concurrent requests into one call
of at most PEER_MAX_BATCH texts, within its PEER_MAX_LATENCY_MS latency budget (BentoML docs, "Adaptive batching").
"""

from __future__ import annotations

import os
import sys

import bentoml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minilm import MiniLMClassifier

MAX_BATCH = int(os.environ.get("PEER_MAX_BATCH", "32"))
MAX_LATENCY_MS = int(os.environ.get("PEER_MAX_LATENCY_MS", "1000"))


@bentoml.service(workers=1, traffic={"timeout": 60})
class MiniLM:
    def __init__(self) -> None:
        self.model = MiniLMClassifier(os.environ["PEER_BUNDLE"])

    @bentoml.api(
        batchable=True, batch_dim=0, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS, route="/v1/predict"
    )
    def predict(self, inputs: list[str]) -> list[dict]:
        return self.model(inputs)
