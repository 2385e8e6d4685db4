"""The REST API on a real bundle: routes, response shapes, limits, auth and the uniform JSON errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import serving

SERVING_MD = Path(__file__).parents[2] / "docs" / "serving.md"


@pytest.fixture(scope="module")
def client(tfidf_bundle):
    with serving(tfidf_bundle, max_inputs=4, max_text_chars=200, max_body_bytes=50_000) as client:
        yield client


def assert_error(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    assert "Traceback" not in response.text and "/tmp" not in response.text and ".py" not in response.text
    return body["error"]


def test_health_and_readiness_answer_once_the_model_is_loaded(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/"])
def test_head_answers_wherever_get_does_without_a_body(client, path):
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_on_a_post_route_is_405(client):
    assert client.head("/v1/predict").status_code == 405


def test_model_info_names_the_model_its_labels_and_input_schema(client):
    info = client.get("/v1/model").json()
    assert info["name"] == "test-tfidf-linear" and info["task"] == "text_classification"
    assert len(info["labels"]) == 8 and info["input_schema"] == {"type": "string"}
    assert info["version"].startswith("sha256:") and info["limits"]["max_inputs"] == 4


def test_predict_answers_every_input_with_an_id_and_the_model_version(client):
    response = client.post("/v1/predict", json={"inputs": ["my card has not arrived", "top up failed"], "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    labels = client.get("/v1/model").json()["labels"]
    assert len(body["predictions"]) == 2 and len(set(body["prediction_ids"])) == 2
    for prediction in body["predictions"]:
        assert prediction["label"] in labels and len(prediction["probabilities"]) == 3
        scores = [p["score"] for p in prediction["probabilities"]]
        assert scores == sorted(scores, reverse=True) and 1 / len(labels) <= scores[0] and sum(scores) <= 1 + 1e-6
    assert body["model"] == {
        "name": "test-tfidf-linear",
        "version": client.get("/v1/model").json()["version"],
    }


def test_openapi_shows_the_task_input_shape_with_the_server_limits(client):
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]["inputs"]
    assert request["items"] == {"type": "string", "maxLength": 200} and request["maxItems"] == 4


def test_uploaded_text_files_are_predicted_like_json_inputs(client):
    files = [("files", ("a.txt", b"I want to top up my account", "text/plain"))]
    response = client.post("/v1/predict/upload", files=files, data={"top_k": "2"})
    assert response.status_code == 200 and len(response.json()["predictions"][0]["probabilities"]) == 2


def test_a_blank_text_gets_a_422_naming_it_in_json_and_as_an_upload(client):
    error = assert_error(client.post("/v1/predict", json={"inputs": ["top up failed", " \n"]}), 422, "invalid_input")
    assert error["message"] == "inputs.1: blank or whitespace only: there is no text to predict"
    files = [("files", ("a.txt", b"top up failed", "text/plain")), ("files", ("b.txt", b"  ", "text/plain"))]
    error = assert_error(client.post("/v1/predict/upload", files=files), 422, "invalid_input")
    assert error["message"] == "files.1 (b.txt): blank or whitespace only: there is no text to predict"


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": []},
        {"inputs": ["a"] * 5},
        {"inputs": ["x" * 201]},
        {"inputs": [3]},
        {"inputs": ["a"], "top_k": 0},
        {"inputs": ["a"], "surprise": True},
        {"text": "no inputs key"},
    ],
    ids=["empty", "too-many", "too-long", "not-text", "bad-top-k", "unknown-key", "missing-inputs"],
)
def test_invalid_requests_get_a_422_naming_the_field(client, body):
    error = assert_error(client.post("/v1/predict", json=body), 422, "invalid_input")
    assert error["message"]


def test_malformed_json_gets_a_422_in_the_same_shape(client):
    assert_error(
        client.post("/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "invalid_input",
    )


def test_unknown_routes_and_methods_get_json_404_and_405(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/v1/predict"), 405, "method_not_allowed")


def test_a_declared_body_over_the_limit_is_refused_with_413(client):
    response = client.post("/v1/predict", content=b"x" * 60_000, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_a_streamed_body_over_the_limit_is_refused_with_413(client):
    def chunks():
        for _ in range(10):
            yield b" " * 10_000

    response = client.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_cors_is_off_unless_an_origin_is_configured(client, tfidf_bundle):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=preflight).headers
    with serving(tfidf_bundle, cors_origins=["https://app.example"]) as allowed:
        answer = allowed.options("/v1/predict", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://app.example"


def test_the_playground_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # no external assets: works offline


class TestApiKey:
    @pytest.fixture(scope="class")
    def secured(self, tfidf_bundle):
        with serving(tfidf_bundle, api_key="s3cret-key") as client:
            yield client

    def test_requests_without_the_key_get_401(self, secured):
        response = secured.post("/v1/predict", json={"inputs": ["hi"]})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    def test_a_wrong_key_gets_401(self, secured):
        response = secured.get("/v1/model", headers={"Authorization": "Bearer wrong"})
        assert_error(response, 401, "unauthorized")

    def test_the_right_key_is_accepted(self, secured):
        response = secured.post("/v1/predict", json={"inputs": ["hi"]}, headers={"Authorization": "Bearer s3cret-key"})
        assert response.status_code == 200

    def test_health_probes_stay_open(self, secured):
        assert secured.get("/healthz").status_code == 200 and secured.get("/readyz").status_code == 200

    def test_the_routes_open_without_the_key_are_those_serving_md_names(self, secured):
        schema = secured.get("/openapi.json").json()["paths"]
        paths = {path for path, ops in schema.items() if "get" in ops} | {"/", "/docs", "/openapi.json"}
        open_paths = {path for path in paths if secured.get(path).status_code != 401}
        assert open_paths == {"/", "/docs", "/openapi.json", "/healthz", "/readyz"}
        row = next(line for line in SERVING_MD.read_text().splitlines() if "MODELYARD_API_KEY" in line)
        assert all(f"`{path}`" in row for path in open_paths), row

    def test_metrics_need_the_key(self, secured):
        assert_error(secured.get("/metrics"), 401, "unauthorized")
