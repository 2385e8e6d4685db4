"""Preference tuning from feedback: chat answers are logged, rated and corrected, become pairs, and `retrain` tunes
the chat bundle with DPO and gates the challenger (a tiny random Llama: the real path, in seconds)."""

from __future__ import annotations

import json

import pytest
import yaml
from llm_helpers import save_tiny_chat_llama
from serving_helpers import serving

import modelyard
from modelyard.errors import DataError
from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.prediction_log import read_predictions
from modelyard.monitoring.retrain import retrain
from modelyard.tracking import registry

COLOURS = [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red")]
WRONG = {c: [COLOURS[(i + 1) % 5][1], COLOURS[(i + 2) % 5][1]] for i, (_, c) in enumerate(COLOURS)}


def chat(thing: str, colour: str | None = None) -> dict:
    messages = [{"role": "user", "content": f"colour of {thing}?"}]
    return {"messages": messages + ([{"role": "assistant", "content": colour}] if colour else [])}


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """An SFT adapter bundle on the colour questions, and the config it was trained from."""
    folder = tmp_path_factory.mktemp("chat")
    examples = [chat(t, c) for t, c in COLOURS]
    corpus = "".join(json.dumps(e) for e in examples) + "abcdefghijklmnopqrstuvwxyz?"
    save_tiny_chat_llama(folder / "tiny", corpus)
    (folder / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples * 2), encoding="utf-8")
    (folder / "test.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    config = {
        "name": "colours-dpo",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "test": "test.jsonl", "split": {"validation": 0.0}},
        "model": {
            "backbone": str(folder / "tiny"),
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "generation": {"max_new_tokens": 4, "temperature": 0},
            "decode_weights": "float",
        },
        "train": {"max_steps": 2, "batch_size": 4, "learning_rate": 0.05, "early_stopping": None},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    bundle = modelyard.train(folder / "c.yaml", output=folder / "champion", quiet=True).path
    return folder / "c.yaml", bundle


def test_rated_chat_answers_become_pairs_and_retrain_gates_a_dpo_challenger(champion, tmp_path):
    config, bundle = champion
    with serving(bundle) as client:
        ids = {}
        for thing, _ in COLOURS:
            response = client.post("/v1/chat/completions", json=chat(thing))
            assert response.status_code == 200
            ids[thing] = response.json()["id"]
        for thing, colour in COLOURS[:3]:  # thumbs down with the right answer
            sent = {"prediction_id": ids[thing], "rating": "down", "corrected": colour}
            assert client.post("/v1/feedback", json=sent).status_code == 200
        refused = client.post("/v1/feedback", json={"prediction_id": ids["coal"], "rating": "sideways"})
        assert refused.status_code == 422
    logged = read_predictions(model="colours-dpo")
    assert set(logged["prediction_id"]) == set(ids.values())
    assert json.loads(logged.iloc[0]["label"]) == {"rating": "down", "corrected": "blue"}

    pairs = tmp_path / "pairs.jsonl"
    rows = [{**chat(t), "chosen": c, "rejected": WRONG[c][0]} for t, c in COLOURS] + [
        {"prompt": f"colour of {t}?", "chosen": c, "rejected": WRONG[c][1]} for t, c in COLOURS
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert import_feedback(pairs, str(bundle))["pairs"] == 10

    decision = retrain(config, str(bundle), output=tmp_path / "challenger", beta=0.5)
    used = decision["preference"]
    assert used["pairs"] == 3 and used["imported_pairs"] == 10  # 3 corrections; the model answers differ from them
    assert used["used_for_training"] + used["skipped_too_long"] + used["held_out"] == 13
    assert used["held_out_scored"] >= 1
    challenger = decision["challenger"]
    assert challenger["pairs"] == used["held_out_scored"] and 0 <= challenger["win_rate"] <= 1
    assert decision["champion"]["loss"] > 0 and "preference" in json.loads(
        (tmp_path / "challenger" / "metrics.json").read_text()
    )
    assert modelyard.load(tmp_path / "challenger").manifest["weights"] == "lora-adapter"
    aliases = registry.describe("colours-dpo").aliases
    assert aliases["challenger"] == challenger["version"]
    assert (aliases.get("champion") == challenger["version"]) == decision["promoted"]


def test_a_pair_file_with_a_bad_row_is_refused_whole_naming_its_line(champion, tmp_path):
    _, bundle = champion
    pairs = tmp_path / "pairs.jsonl"
    good = {"prompt": "colour of sky?", "chosen": "blue", "rejected": "green"}
    pairs.write_text(json.dumps(good) + "\n" + json.dumps({**good, "rejected": "blue"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.jsonl, line 2: 'chosen' and 'rejected' are the same answer"):
        import_feedback(pairs, str(bundle))


def test_a_conversation_opening_with_the_assistant_becomes_pairs_that_encode(champion, tmp_path):
    from modelyard.learners.preference import encode_pair
    from modelyard.monitoring.preferences import collect_pairs

    _, bundle = champion
    greeted = [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "colour of sky?"}]
    with serving(bundle) as client:
        answered = client.post("/v1/chat/completions", json={"messages": greeted})
        assert answered.status_code == 200
        rated = {"prediction_id": answered.json()["id"], "rating": "down", "corrected": "light blue"}
        assert client.post("/v1/feedback", json=rated).status_code == 200
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"messages": greeted, "chosen": "blue", "rejected": "red"}) + "\n", encoding="utf-8")
    import_feedback(pairs, str(bundle))
    collected, _ = collect_pairs("colours-dpo")
    opening = [p for p in collected if p["messages"] == greeted]
    assert {p["chosen"] for p in opening} == {"light blue", "blue"}
    learner = modelyard.load(bundle).learner
    assert all(encode_pair(learner, p) is not None for p in opening)  # what retrain trains on


def test_retrain_refuses_before_training_a_test_split_whose_answers_max_length_cuts_away(champion, tmp_path):
    config, bundle = champion
    pairs = tmp_path / "pairs.jsonl"
    rows = [{**chat(t), "chosen": c, "rejected": WRONG[c][0]} for t, c in COLOURS]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    import_feedback(pairs, str(bundle))
    long = chat("very " * 30 + "dark coal", "black")
    (tmp_path / "test.jsonl").write_text(json.dumps(long) + "\n", encoding="utf-8")
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["data"].update(train=str(config.parent / "train.jsonl"), test=str(tmp_path / "test.jsonl"))
    raw["model"]["max_length"] = 100
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(DataError, match=r"model\.max_length 100 cuts away the answer of every test example \(1\)"):
        retrain(tmp_path / "c.yaml", str(bundle), output=tmp_path / "challenger")
    assert not (tmp_path / "challenger").exists()
