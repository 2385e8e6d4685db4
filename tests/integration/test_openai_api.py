"""The OpenAI-compatible routes on a real GPT bundle: response shapes, usage, SSE streams, batching, errors."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from serving_helpers import serving


@pytest.fixture(scope="module")
def client(tiny_gpt_bundle):
    with serving(tiny_gpt_bundle, max_text_chars=500) as client:
        yield client


def sse_payloads(text: str) -> list:
    lines = [line for line in text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines), text
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_a_completion_answers_with_text_finish_reason_and_token_usage(client):
    body = client.post("/v1/completions", json={"prompt": "ROMEO:", "max_tokens": 5, "temperature": 0}).json()
    assert body["object"] == "text_completion" and body["model"] == "tiny-gpt"
    (choice,) = body["choices"]
    assert choice["finish_reason"] in ("length", "stop") and isinstance(choice["text"], str)
    assert body["usage"] == {
        "prompt_tokens": 6,
        "completion_tokens": body["usage"]["completion_tokens"],
        "total_tokens": 6 + body["usage"]["completion_tokens"],
    }
    assert 1 <= body["usage"]["completion_tokens"] <= 5


def test_a_streamed_completion_is_server_sent_events_ending_in_done(client):
    response = client.post(
        "/v1/completions",
        json={
            "prompt": "KING:",
            "max_tokens": 6,
            "stream": True,
            "temperature": 0,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_payloads(response.text)
    assert chunks[-1]["usage"]["prompt_tokens"] == 5 and chunks[-1]["choices"] == []
    text = "".join(c["choices"][0]["text"] for c in chunks[:-1])
    plain = client.post("/v1/completions", json={"prompt": "KING:", "max_tokens": 6, "temperature": 0}).json()
    assert text == plain["choices"][0]["text"]
    assert chunks[-2]["choices"][0]["finish_reason"] in ("length", "stop")


def test_a_streamed_chat_completion_sends_role_then_content_deltas(client):
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Speak"}], "max_tokens": 4, "stream": True},
    )
    chunks = sse_payloads(response.text)
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_a_chat_completion_answers_with_an_assistant_message(client):
    body = client.post(
        "/v1/chat/completions",
        json={
            "messages": [
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": [{"type": "text", "text": "Speak"}]},
            ],
            "max_completion_tokens": 3,
            "seed": 1,
        },
    ).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant" and body["usage"]["completion_tokens"] <= 3


def test_concurrent_requests_are_decoded_in_one_batch(client):
    def ask(i: int) -> dict:
        return client.post("/v1/completions", json={"prompt": f"Line {i}:", "max_tokens": 8}).json()

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, range(6)))
    assert all(a["choices"][0]["finish_reason"] for a in answers)
    assert max(client.app.state.generation_batcher.batch_sizes) > 1


def test_invalid_sampling_options_are_a_json_422(client):
    response = client.post("/v1/completions", json={"prompt": "x", "temperature": 50})
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_input"
    assert "temperature" in response.json()["error"]["message"]


def test_a_prompt_over_the_size_limit_is_refused(client):
    response = client.post("/v1/completions", json={"prompt": "x" * 600})
    assert response.status_code == 422 and "limit is 500" in response.json()["error"]["message"]


def test_the_size_limit_counts_the_characters_of_the_messages_text_not_their_json(client):
    wide = {"messages": [{"role": "user", "content": "銀" * 400}], "max_tokens": 1}  # 2,400 as JSON \\u escapes
    assert client.post("/v1/chat/completions", json=wide).status_code == 200
    long = [{"role": "system", "content": "x" * 300}, {"role": "user", "content": "銀" * 300}]
    response = client.post("/v1/chat/completions", json={"messages": long})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "messages: 600 characters of text; the limit is 500"


def test_log_probabilities_are_refused_naming_the_field_and_max_tokens_is_named_as_sent(client):
    chat = {"messages": [{"role": "user", "content": "x"}]}
    for asked, field in (({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs")):
        response = client.post("/v1/chat/completions", json=chat | asked)
        assert response.status_code == 400 and response.json()["error"]["message"].startswith(f"{field}:")
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1, "logprobs": None}).status_code == 200
    response = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 100000})
    assert response.status_code == 422 and response.json()["error"]["message"].startswith("max_tokens:")
    response = client.post("/v1/chat/completions", json=chat | {"max_completion_tokens": 100000})
    assert response.json()["error"]["message"].startswith("max_completion_tokens:")


def test_an_empty_or_oversized_prompt_list_is_refused(client):
    empty = client.post("/v1/completions", json={"prompt": []})
    assert empty.status_code == 422 and "at least one prompt" in empty.json()["error"]["message"]
    many = client.post("/v1/completions", json={"prompt": ["x"] * 65, "max_tokens": 1})
    assert many.status_code == 422 and "65 prompts; at most 64" in many.json()["error"]["message"]


def test_a_seed_out_of_range_is_a_422_naming_it(client):
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "seed": 2**70})
    assert response.status_code == 422 and "seed" in response.json()["error"]["message"]


@pytest.mark.parametrize("options", [{"temperature": 1e-300}, {"repetition_penalty": 1e-300, "temperature": 0.7}])
def test_extreme_but_valid_sampling_settings_still_answer(client, options):
    """A temperature or penalty so small that dividing by it overflows float32 once made every probability NaN."""
    response = client.post("/v1/completions", json={"prompt": "ROMEO:", "max_tokens": 4, "seed": 1, **options})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] in ("length", "stop")


def test_every_completion_is_logged_under_its_id_and_a_scratch_generator_refuses_feedback(tiny_gpt_bundle):
    """Logged under the id the answer carries; a rating of a model trained from scratch is refused (422, not 404:
    the id is found), as nothing (retrain, monitor) could use it: pretrained chat models take ratings."""
    from modelyard.monitoring.prediction_log import read_predictions

    with serving(tiny_gpt_bundle) as fresh:
        one = fresh.post("/v1/completions", json={"prompt": "ROMEO:", "max_tokens": 3}).json()
        two = fresh.post("/v1/completions", json={"prompt": ["A:", "B:"], "max_tokens": 3}).json()
        streamed = fresh.post("/v1/completions", json={"prompt": "C:", "max_tokens": 3, "stream": True})
        stream_id = sse_payloads(streamed.text)[0]["id"]
        rated = fresh.post("/v1/feedback", json={"prediction_id": one["id"], "label": {"rating": "up"}})
        assert rated.status_code == 422 and "pretrained chat models" in rated.text, rated.text
    rows = read_predictions().set_index("prediction_id")
    expected = {
        one["id"]: ("ROMEO:", one["choices"][0]["text"]),
        f"{two['id']}.0": ("A:", two["choices"][0]["text"]),
        f"{two['id']}.1": ("B:", two["choices"][1]["text"]),
        stream_id: ("C:", "".join(p["choices"][0]["text"] for p in sse_payloads(streamed.text) if p["choices"])),
    }
    assert set(rows.index) == set(expected)
    for ident, (prompt, text) in expected.items():
        assert (json.loads(rows.loc[ident, "input"]), json.loads(rows.loc[ident, "output"])) == (prompt, {"text": text})
    assert rows["label"].isna().all()
