"""The rules that turn chat feedback into preference pairs, the checks on imported pairs, and the DPO gate."""

from __future__ import annotations

import json

import pytest

from modelyard.errors import DataError
from modelyard.monitoring.preference_retrain import gate, split_pairs
from modelyard.monitoring.preferences import (
    MAX_PAIRS_PER_PROMPT,
    build_pairs,
    chat_feedback,
    import_chat_feedback,
    label_as_chat_feedback,
    prompt_messages,
)

SKY = [{"role": "user", "content": "colour of sky?"}]
SNOW = [{"role": "user", "content": "colour of snow?"}]


def test_a_thumbs_down_with_a_correction_prefers_the_correction_to_the_answer():
    pairs, report = build_pairs([(SKY, "green", {"rating": "down", "corrected": "blue"})])
    assert pairs == [{"messages": SKY, "chosen": "blue", "rejected": "green"}]
    assert report["pairs"] == 1 and report["unpaired"] == 0


def test_thumbs_up_answers_pair_with_thumbs_down_answers_to_the_same_prompt_only():
    rated = [
        (SKY, "blue", {"rating": "up"}),
        (SKY, "green", {"rating": "down"}),
        (SKY, "red", {"rating": "down"}),
        (SNOW, "black", {"rating": "down"}),
    ]
    pairs, report = build_pairs(rated)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("blue", "green"), ("blue", "red")]
    assert all(p["messages"] == SKY for p in pairs)
    assert report["unpaired"] == 1  # the lone thumbs-down on snow


def test_a_lone_thumbs_up_and_a_correction_equal_to_the_answer_give_no_pair_and_are_counted_unpaired():
    pairs, report = build_pairs([(SKY, "blue", {"rating": "up"}), (SNOW, "white", {"corrected": "white "})])
    assert pairs == [] and report["unpaired"] == 2


def test_a_correction_equal_to_the_answer_lets_it_stand_as_a_chosen_answer():
    rated = [(SNOW, "white", {"rating": "down", "corrected": " white"}), (SNOW, "black", {"rating": "down"})]
    pairs, report = build_pairs(rated)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("white", "black")] and report["unpaired"] == 0


def test_pairs_per_prompt_are_capped_and_never_repeated():
    rated = [(SKY, f"good {i}", {"rating": "up"}) for i in range(4)]
    rated += [(SKY, f"bad {i}", {"rating": "down"}) for i in range(4)] + [(SKY, "bad 0", {"rating": "down"})]
    pairs, _ = build_pairs(rated)
    assert len(pairs) == MAX_PAIRS_PER_PROMPT
    assert len({(p["chosen"], p["rejected"]) for p in pairs}) == len(pairs)


def test_chat_feedback_values_are_checked():
    assert chat_feedback(None, "blue") == {"rating": "down", "corrected": "blue"}
    assert label_as_chat_feedback("up") == {"rating": "up"}
    assert label_as_chat_feedback("blue") == {"rating": "down", "corrected": "blue"}
    with pytest.raises(ValueError, match="rating must be 'up' or 'down'"):
        chat_feedback("meh")
    with pytest.raises(ValueError, match="needs a rating"):
        chat_feedback()
    with pytest.raises(ValueError, match="unknown key 'score'"):
        label_as_chat_feedback({"score": 1})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"chosen": "a", "rejected": "b"}, "give exactly one of 'prompt'"),
        ({"prompt": "q", "messages": SKY, "chosen": "a", "rejected": "b"}, "give exactly one of 'prompt'"),
        ({"prompt": "q", "chosen": "a"}, "'rejected' must be a non-empty string"),
        ({"prompt": "q", "chosen": " ", "rejected": "b"}, "'chosen' must be a non-empty string"),
        ({"messages": [{"role": "bot", "content": "x"}], "chosen": "a", "rejected": "b"}, r"messages\[0\] must be"),
        ({"messages": [*SKY, {"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}, "end with"),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "why": "x"}, "unknown field 'why'"),
        ({"messages": [{"role": "user", "content": " "}], "chosen": "a", "rejected": "b"}, "last turn is empty"),
        ({"prediction_id": "nope", "rating": "up"}, "unknown prediction_id 'nope'"),
    ],
)
def test_a_bad_row_of_an_import_file_names_the_file_and_its_line(tmp_path, row, message):
    path = tmp_path / "pairs.jsonl"
    good = {"prompt": "colour of sky?", "chosen": "blue", "rejected": "green"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"pairs.jsonl, line 3: .*{message}"):
        import_chat_feedback(path, path.read_text(), "chat")


def test_held_out_pairs_are_split_off_by_prompt():
    pairs = [
        {"messages": [{"role": "user", "content": f"q{i % 4}"}], "chosen": f"a{i}", "rejected": "b"} for i in range(8)
    ]
    train, held = split_pairs(pairs, seed=42)
    assert len(held) == 2 and len(train) == 6  # a quarter of the 4 prompts, with both of its pairs
    assert not {json.dumps(p["messages"]) for p in held} & {json.dumps(p["messages"]) for p in train}
    assert split_pairs(pairs[:1], seed=42) == (pairs[:1], [])


def scores(margin: float, loss: float, win_rate: float = 1.0, accuracy: float = 0.75) -> dict:
    return {
        "preference_margin": margin,
        "loss": loss,
        "win_rate": win_rate,
        "preference_accuracy": accuracy,
        "pairs": 4,
    }


def test_the_gate_needs_a_better_margin_no_lower_accuracy_a_majority_of_wins_and_no_loss_regression():
    champion = scores(0.0, 1.0)
    assert gate(champion, scores(0.5, 1.04), margin=0.1, loss_tolerance=0.05)[0]
    refused = {
        "does not beat": scores(0.05, 1.0),
        "wins on only 25%": scores(0.5, 1.0, win_rate=0.25),
        "preference accuracy 0.5000 is below": scores(0.5, 1.0, accuracy=0.5),
        "test loss 1.2000 regresses": scores(0.5, 1.2),
    }
    for reason, challenger in refused.items():
        promoted, why = gate(champion, challenger, margin=0.1, loss_tolerance=0.05)
        assert not promoted and reason in why
    assert not gate({**champion, "pairs": 0}, scores(0.5, 1.0), 0.0, 0.05)[0]


def test_the_prompts_collected_count_those_of_imported_pairs_too(tmp_path):
    from modelyard.monitoring.prediction_log import open_log
    from modelyard.monitoring.preferences import collect_pairs, ensure_table, store_pairs

    conn = open_log(tmp_path)
    try:
        ensure_table(conn)
        with conn:
            imported = [{"messages": m, "chosen": "white", "rejected": "green"} for m in (SKY, SNOW, SNOW)]
            store_pairs(conn, "colours", imported, "pairs.jsonl")
    finally:
        conn.close()
    pairs, report = collect_pairs("colours", tmp_path)
    assert len(pairs) == 3 and report["prompts"] == 2 and report["imported_pairs"] == 3


@pytest.mark.parametrize(
    "logged",
    [
        {"messages": [{"role": "tool", "content": "42"}]},
        {"messages": [{"role": "system", "content": "be kind"}]},
        {"messages": [{"role": "user", "content": None}]},
        {"messages": [*SKY, {"role": "assistant", "content": "blue"}]},
        "   ",
    ],
)
def test_a_logged_conversation_an_import_would_refuse_makes_no_pair(logged):
    assert prompt_messages(logged) is None
    assert prompt_messages({"messages": SKY}) == SKY
