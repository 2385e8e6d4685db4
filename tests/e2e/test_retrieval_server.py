"""`modelyard serve INDEX` as clients use it: the official `openai` client's embeddings.create, the search route,
and clear 4xx answers, against a real uvicorn server on loopback."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
from retrieval_helpers import write_docs
from serving_live import live_server

from modelyard.retrieval.encoder import TextEmbedder
from modelyard.retrieval.index import build


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    build(write_docs(root / "docs"), root / "handbook")
    with live_server(root / "handbook") as url:
        yield url


def test_the_openai_client_embeds_texts_like_the_encoder_does(server):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    texts = ["water the tomatoes", "steam railways"]
    answer = client.embeddings.create(model="minilm-l6", input=texts)
    got = np.array([d.embedding for d in answer.data])
    assert [d.index for d in answer.data] == [0, 1] and got.shape == (2, 384)
    expected = TextEmbedder.load("minilm-l6").embed(texts, "query")
    assert (got * expected).sum(1).min() > 0.999
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 4


def test_embeddings_answer_floats_in_openais_json_shape(server):
    body = httpx.post(f"{server}/v1/embeddings", json={"model": "handbook", "input": "hello"}, timeout=60).json()
    assert body["object"] == "list" and body["model"] == "handbook"
    [item] = body["data"]
    assert item["object"] == "embedding" and item["index"] == 0 and len(item["embedding"]) == 384
    assert abs(np.linalg.norm(item["embedding"]) - 1) < 1e-3


def test_search_returns_cited_chunks_in_each_mode(server):
    for mode in ("hybrid", "dense", "bm25"):
        body = {"query": "how often should tomatoes be watered", "k": 2, "mode": mode}
        answer = httpx.post(f"{server}/v1/search", json=body, timeout=60).json()
        best = answer["results"][0]
        assert (best["file"], best["section"]) == ("garden.md", "Garden guide > Watering"), mode
        assert set(best) == {"file", "section", "text", "score", "chunk"}
        # BM25 returns only chunks sharing a word with the query: one here
        assert len(answer["results"]) == (1 if mode == "bm25" else 2), mode


@pytest.mark.parametrize(
    ("route", "body", "status", "message"),
    [
        ("embeddings", {"model": "gpt-4", "input": "x"}, 404, "no model named 'gpt-4'"),
        ("embeddings", {"model": "minilm-l6", "input": []}, 422, "give at least one text"),
        ("embeddings", {"model": "minilm-l6", "input": "x", "dimensions": 12}, 422, "384 dimensions only"),
        ("search", {"query": "tomatoes", "mode": "fuzzy"}, 422, "mode"),
        ("search", {"query": "tomatoes", "k": 1000}, 422, "at most 100"),
        ("search", {"query": "   "}, 422, "query: blank text"),
    ],
)
def test_bad_requests_get_one_json_error(server, route, body, status, message):
    answer = httpx.post(f"{server}/v1/{route}", json=body, timeout=60)
    assert answer.status_code == status and message in answer.json()["error"]["message"]


def test_readiness_and_model_describe_the_index(server):
    assert httpx.get(f"{server}/readyz").json()["model"] == "handbook"
    info = httpx.get(f"{server}/v1/model").json()
    assert info["encoder"] == "minilm-l6" and info["files"] == 4 and info["kind"] == "retrieval-index"
