"""What `validate` checks for `evaluation.metrics`, and the JSON-schema 400s of the chat route, on a tiny GPT."""

from __future__ import annotations

import json

import pytest
import yaml
from serving_helpers import serving

import modelyard
from modelyard.errors import ConfigError, DataError, UserError


def config(folder, rows, metrics) -> str:
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    raw = {
        "name": "checks",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "split": {"validation": 0.0, "test": 0.5}},
        "model": {"backbone": "gpt-scratch"},
        "evaluation": {"metrics": metrics},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(folder / "c.yaml")


def qa(n: int, passages: bool = True) -> list[dict]:
    chat = [{"role": "user", "content": f"What is {n} plus one?"}, {"role": "assistant", "content": str(n + 1)}]
    return [{"messages": chat, **({"passages": [f"{n} plus one is {n + 1}."]} if passages else {})}]


def test_validate_reports_the_examples_evaluation_metrics_will_score(tmp_path):
    data = modelyard.validate(config(tmp_path, [r for n in range(8) for r in qa(n)], ["token_f1", "faithfulness"]))
    assert data.report["evaluation"] == {"metrics": ["token_f1", "faithfulness"], "scored_examples": 4, "split": "test"}


def test_validate_refuses_faithfulness_without_passages_naming_the_example(tmp_path):
    rows = [r for n in range(8) for r in qa(n, passages=n != 7)]
    with pytest.raises(DataError, match=r"train.jsonl: line 8: the example has no .passages."):
        modelyard.validate(config(tmp_path, rows, ["faithfulness"]))


def test_validate_refuses_metrics_on_plain_text_and_malformed_passages(tmp_path):
    with pytest.raises(ConfigError, match="needs chat or prompt/completion data"):
        modelyard.validate(config(tmp_path, [{"text": "some prose"}] * 4, ["rouge_l"]))
    bad = [{"prompt": "p", "completion": "c", "passages": "not a list"}] * 4
    with pytest.raises(DataError, match="'passages' must be a list of strings"):
        modelyard.validate(config(tmp_path, bad, ["rouge_l"]))


def test_the_chat_route_refuses_a_schema_it_cannot_enforce_and_models_without_a_vocabulary(tiny_gpt_bundle):
    with serving(tiny_gpt_bundle) as client:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        number = {"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}}
        fmt = {"type": "json_schema", "json_schema": {"name": "f", "schema": number}}
        refused = client.post("/v1/chat/completions", json=body | {"response_format": fmt})
        assert refused.status_code == 400 and "#/properties/x" in refused.json()["error"]["message"]
        invalid = {"type": "json_schema", "json_schema": {"name": "f", "schema": {"type": "strnig"}}}
        refused = client.post("/v1/chat/completions", json=body | {"response_format": invalid})
        assert refused.status_code == 400 and "not a valid JSON schema" in refused.json()["error"]["message"]
        gpt = client.post("/v1/chat/completions", json=body | {"response_format": {"type": "json_object"}})
        assert gpt.status_code == 400 and "cannot constrain" in gpt.json()["error"]["message"]
        with_stop = body | {"response_format": {"type": "json_object"}, "stop": ["}"]}
        assert client.post("/v1/chat/completions", json=with_stop).status_code == 400


UNENFORCEABLE = [
    ({"type": "integer", "minimum": 0, "maximum": float("inf")}, "maximum"),
    ({"type": "integer", "minimum": float("nan"), "maximum": 3}, "minimum"),
    ({"enum": []}, "enum"),
    ({"type": "integer", "minimum": 0, "maximum": 5, "enum": [7]}, "enum"),
    ({"$ref": "#/$defs/missing"}, "$ref"),
    ({"enum": [{"a": 1}, [1, 2], "x"]}, "enum"),
    ({"type": "string", "pattern": "^(?<=a)b$"}, "pattern"),
    ({"const": {"a": [1, 2]}}, "const"),
]


def test_the_chat_route_answers_400_naming_the_keyword_for_schemas_that_pass_the_json_schema_check(tiny_gpt_bundle):
    with serving(tiny_gpt_bundle) as client:
        for schema, keyword in UNENFORCEABLE:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            fmt = {"type": "json_schema", "json_schema": {"name": "f", "schema": schema}}
            for stream in (False, True):
                sent = json.dumps(body | {"response_format": fmt, "stream": stream})  # keeps Infinity, NaN
                headers = {"content-type": "application/json"}
                refused = client.post("/v1/chat/completions", content=sent, headers=headers)
                assert refused.status_code == 400, (schema, refused.text)
                assert keyword in refused.json()["error"]["message"]


def test_generate_refuses_an_unenforceable_schema_and_stop_with_a_schema_in_one_line(tiny_gpt_bundle, tmp_path):
    from typer.testing import CliRunner

    from modelyard.cli import app

    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"enum": []}), encoding="utf-8")
    result = CliRunner().invoke(app, ["generate", str(tiny_gpt_bundle), "-p", "hi", "--json-schema", str(schema)])
    assert isinstance(result.exception, UserError) and "enum leaves no value" in str(result.exception)
    schema.write_text(json.dumps({"type": "object"}), encoding="utf-8")
    stop = ["generate", str(tiny_gpt_bundle), "-p", "hi", "--json-schema", str(schema), "--stop", '"']
    result = CliRunner().invoke(app, stop)
    assert isinstance(result.exception, UserError) and "--stop cannot be combined" in str(result.exception)


def test_generate_json_schema_names_an_unreadable_schema_file_and_a_model_that_cannot_follow_it(
    tiny_gpt_bundle, tmp_path
):
    from typer.testing import CliRunner

    from modelyard.cli import app  # `modelyard` prints a UserError as one line and exits 1

    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(app, ["generate", str(tiny_gpt_bundle), "-p", "hi", "--json-schema", str(broken)])
    assert isinstance(result.exception, UserError) and "cannot read the JSON schema" in str(result.exception)
    schema = tmp_path / "ticket.json"
    schema.write_text(json.dumps({"type": "object"}), encoding="utf-8")
    result = CliRunner().invoke(app, ["generate", str(tiny_gpt_bundle), "-p", "hi", "--json-schema", str(schema)])
    assert isinstance(result.exception, UserError) and "cannot constrain its output" in str(result.exception)


def test_answer_quality_adds_recall_at_k_and_mrr_of_the_recorded_retrievals(tiny_gpt_bundle):
    from modelyard.generation.quality import score_generations

    generator = modelyard.load(tiny_gpt_bundle).learner.generator
    chat = [{"role": "user", "content": "Who speaks?"}, {"role": "assistant", "content": "ROMEO"}]
    items = [
        {"messages": chat, "retrieved_ids": ["a", "b"], "relevant_ids": ["b"]},  # first relevant at rank 2
        {"messages": chat, "retrieved_ids": ["c", "d"], "relevant_ids": ["c"]},  # at rank 1
    ]
    result = score_generations(generator, items, ["exact_match", "recall_at_k", "mrr"])
    assert result["recall_at_k"] == {"1": 0.5, "5": 1.0, "10": 1.0} and result["mrr"] == 0.75
    assert result["ranked_by"] == "exact_match" and len(result["worst_examples"]) == 2


def test_validate_refuses_ranking_metrics_without_retrieved_and_relevant_ids(tmp_path):
    with pytest.raises(DataError, match="needs 'retrieved_ids' and non-empty 'relevant_ids' for mrr"):
        modelyard.validate(config(tmp_path, [r for n in range(8) for r in qa(n)], ["mrr"]))


def test_a_scored_example_without_a_final_answer_or_a_prompt_is_named_by_its_file_line(tmp_path):
    rows = [r for n in range(8) for r in qa(n)]  # rows 4, 5, 7 and 8 of the file are the test split
    rows[4] = {"messages": [*rows[4]["messages"], {"role": "user", "content": "thanks"}]}
    with pytest.raises(DataError, match=r"train\.jsonl: line 5: the example does not end with an assistant answer"):
        modelyard.validate(config(tmp_path, rows, ["rouge_l"]))
    rows[4] = {"messages": [{"role": "assistant", "content": "Hello!"}]}  # trainable, but nothing to answer
    with pytest.raises(DataError, match=r"train\.jsonl: line 5: the example is only an assistant answer"):
        modelyard.validate(config(tmp_path, rows, ["rouge_l"]))


def test_evaluate_names_the_line_of_its_data_file_not_a_split(tiny_gpt_bundle, tmp_path):
    chat = [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Who speaks?"}]
    (tmp_path / "ev.jsonl").write_text(json.dumps({"messages": chat}) + "\n", encoding="utf-8")
    model = modelyard.load(tiny_gpt_bundle)
    model.config = model.config.model_copy(
        update={"evaluation": model.config.evaluation.model_copy(update={"metrics": ["rouge_l"]})}
    )
    with pytest.raises(DataError, match=r"ev\.jsonl: line 1: the example does not end"):
        model.evaluate(tmp_path / "ev.jsonl")
