"""The bundle's MiniLM classifier behind LitServe with dynamic batching (run by benchmarks/peer_serving.py).

    PEER_BUNDLE=BUNDLE PEER_MAX_BATCH=32 PEER_BATCH_TIMEOUT=0.01 python litserve_app.py --port 8000

POST /v1/predict {"inputs": ["one text"]}: LitServe collects up to PEER_MAX_BATCH requests, waiting at most
PEER_BATCH_TIMEOUT seconds (LitServe docs, "Batching"), and `predict` gets their texts as one list.
"""

from __future__ import annotations

import argparse
import os
import sys

import litserve as ls

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minilm import MiniLMClassifier


class MiniLMAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = MiniLMClassifier(os.environ["PEER_BUNDLE"])

    def decode_request(self, request: dict) -> str:
        inputs = request["inputs"]
        if len(inputs) != 1:
            raise ValueError("this benchmark server takes one text per request")
        return inputs[0]

    def predict(self, texts: list[str]) -> list[dict]:
        return self.model(texts)

    def encode_response(self, output: dict) -> dict:
        return {"predictions": [output]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    api = MiniLMAPI(
        max_batch_size=int(os.environ.get("PEER_MAX_BATCH", "32")),
        batch_timeout=float(os.environ.get("PEER_BATCH_TIMEOUT", "0.01")),
        api_path="/v1/predict",
    )
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False)
