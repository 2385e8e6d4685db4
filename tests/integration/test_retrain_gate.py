"""The retrain gate: a clearly better challenger is promoted with an audit entry, a worse one is refused."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from modelyard import api
from modelyard.errors import UserError
from modelyard.monitoring.retrain import retrain
from modelyard.tracking import registry

pytestmark = pytest.mark.slow
NAME = "retrain-demo"


def config(folder, banking_slice, rows_per_intent: int):
    """A tf-idf config on the first `rows_per_intent` training rows of each intent and the shared test file
    (no validation carve, so even the smallest train set keeps every intent)."""
    folder.mkdir()
    train = pd.read_csv(banking_slice / "train.csv").groupby("category").head(rows_per_intent)
    train.to_csv(folder / "train.csv", index=False)
    shutil.copy(banking_slice / "test.csv", folder / "test.csv")
    raw = {
        "name": NAME,
        "task": "text_classification",
        "data": {
            "train": "train.csv",
            "test": "test.csv",
            "text_column": "text",
            "label_column": "category",
            "split": {"validation": 0.0},
        },
        "model": {"backbone": "tfidf-linear"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    return folder / "config.yaml"


def test_a_clearly_better_challenger_is_promoted_with_an_audit_entry(banking_slice, tmp_path):
    weak = api.train(config(tmp_path / "weak", banking_slice, 2), output=tmp_path / "champion", quiet=True)
    decision = retrain(
        config(tmp_path / "full", banking_slice, 40), str(weak.path), margin=0.05, output=tmp_path / "challenger"
    )
    assert decision["promoted"] is True, decision["reason"]
    assert decision["challenger"]["macro_f1"] > decision["champion"]["macro_f1"] + 0.05
    assert decision["champion"]["samples"] == decision["challenger"]["samples"]  # the same frozen test rows
    info = registry.describe(NAME)
    assert info.aliases["champion"] == decision["challenger"]["version"]
    assert any(m.alias == "champion" and "retrain gate" in m.why for m in info.trail)


def test_a_worse_challenger_is_refused_and_the_champion_alias_does_not_move(banking_slice, tmp_path):
    strong = api.train(config(tmp_path / "strong", banking_slice, 40), output=tmp_path / "champion", quiet=True)
    decision = retrain(config(tmp_path / "weak", banking_slice, 2), str(strong.path), output=tmp_path / "challenger")
    assert decision["promoted"] is False and "does not beat" in decision["reason"]
    assert "champion" not in registry.describe(NAME).aliases
    assert registry.describe(NAME).aliases["challenger"] == decision["challenger"]["version"]


def test_a_guarded_class_that_gets_worse_blocks_the_promotion():
    from modelyard.monitoring.retrain import decide

    champion = {
        "macro_f1": 0.80,
        "per_class_f1": {"card_arrival": 0.9, "exchange_rate": 0.7},
        "feedback": {"samples": 0},
    }
    challenger = {
        "macro_f1": 0.85,
        "per_class_f1": {"card_arrival": 0.85, "exchange_rate": 0.9},
        "feedback": {"samples": 0},
    }
    assert decide(champion, challenger, "macro_f1", 0.0, [])[0] is True
    promoted, reason = decide(champion, challenger, "macro_f1", 0.0, ["card_arrival"])
    assert promoted is False and "card_arrival" in reason


def test_feedback_with_a_logged_text_and_a_known_label_is_used_and_the_newest_quarter_held_out():
    from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, record_feedback
    from modelyard.monitoring.retrain import _row_keys, feedback_frame, split_feedback

    writer = PredictionLogWriter()
    writer.append(
        [PredictionRecord(f"p{i}", 1000.0 + i, NAME, "1", f"text {i}", {"label": "a"}, 1.0) for i in range(10)]
    )
    writer.close()
    for i in range(9):
        record_feedback(f"p{i}", "unknown_label" if i == 8 else ("a" if i % 2 else "b"))
    frame, skipped = feedback_frame(NAME, ["a", "b"])
    assert skipped == 1 and frame["text"].tolist() == [f"text {i}" for i in range(8)]
    train, held_out = split_feedback(frame, _row_keys(frame, ["text"]))
    assert train["text"].tolist() == [f"text {i}" for i in range(6)]
    assert held_out["text"].tolist() == ["text 6", "text 7"]


def test_every_row_of_one_input_lands_on_the_same_side_of_the_held_out_split():
    from modelyard.monitoring.retrain import _row_keys, split_feedback

    texts = [f"text {i}" for i in range(10)] * 2  # the same traffic twice: each text's rows far apart in time
    frame = pd.DataFrame({"text": texts, "label": "a"})
    train, held_out = split_feedback(frame, _row_keys(frame, ["text"]))
    assert len(held_out) == 4 and not set(train["text"]) & set(held_out["text"])
    assert sorted(set(held_out["text"])) == ["text 8", "text 9"]  # the newest inputs


def test_held_out_feedback_is_never_an_input_the_challenger_trains_on(banking_slice, tmp_path):
    """Repeated traffic (40 texts asked twice, 20 of them training rows) all labelled: no held-out text is in the
    challenger's training file, and held-out rows whose text is a base training row are counted, not scored."""
    from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, record_feedback

    champion = api.train(config(tmp_path / "c", banking_slice, 20), output=tmp_path / "champion", quiet=True)
    train = pd.read_csv(tmp_path / "c" / "train.csv")
    unseen = pd.read_csv(banking_slice / "train.csv").groupby("category").tail(5)
    pairs = zip(train.head(20).itertuples(), unseen.head(20).itertuples(), strict=True)
    asked = [(row.text, row.category) for pair in pairs for row in pair] * 2  # seen, unseen, seen, ...
    writer = PredictionLogWriter()
    writer.append(
        [PredictionRecord(f"p{i}", 1e3 + i, NAME, "1", t, {"label": c}, 1.0) for i, (t, c) in enumerate(asked)]
    )
    writer.close()
    for i, (_, category) in enumerate(asked):
        record_feedback(f"p{i}", category)
    decision = retrain(str(champion.path), output=tmp_path / "challenger")
    feedback = decision["feedback"]
    assert (feedback["held_out"], feedback["held_out_in_training_data"]) == (10, 10)
    assert decision["champion"]["feedback"]["samples"] == 10
    trained_on = set(pd.read_csv(api.load(decision["challenger"]["path"]).config.data.train)["text"])
    newest_unseen = {text for text, _ in asked[-10:]} - set(train["text"])  # the 5 held out, each asked twice
    assert len(newest_unseen) == 5 and not newest_unseen & trained_on


def test_a_config_without_a_champion_is_refused_before_anything_loads(banking_slice, tmp_path):
    path = config(tmp_path / "c", banking_slice, 2)
    with pytest.raises(UserError, match="is a config, and no --model names the champion"):
        retrain(path)


def test_a_challenger_can_itself_be_retrained_and_re_evaluated(banking_slice, tmp_path):
    """Its config names the files it trained on: they stay (under MODELYARD_HOME/retrain), not in a deleted temp
    folder, so the retrain loop runs more than once."""
    import modelyard

    weak = api.train(config(tmp_path / "weak", banking_slice, 2), output=tmp_path / "champion", quiet=True)
    first = retrain(str(weak.path), output=tmp_path / "challenger")
    again = retrain(first["challenger"]["path"], output=tmp_path / "third")
    assert again["champion"]["path"] == first["challenger"]["path"]
    assert again["champion"]["version"] == first["challenger"]["version"]  # given as a folder, named by its version
    assert "warning" not in modelyard.load(first["challenger"]["path"]).evaluate()  # its own test split, re-read


@pytest.mark.parametrize("where", ["champion", "champion/inside"])
def test_an_output_over_or_inside_the_champion_is_refused_before_training(banking_slice, tmp_path, where):
    champion = api.train(config(tmp_path / "c", banking_slice, 2), output=tmp_path / "champion", quiet=True)
    before = (champion.path / "modelyard.json").read_bytes()
    with pytest.raises(UserError, match="would overwrite or sit inside the champion"):
        retrain(str(champion.path), output=tmp_path / where)
    assert (champion.path / "modelyard.json").read_bytes() == before and not (tmp_path / "champion/inside").exists()


@pytest.mark.parametrize(
    ("margin", "alias", "said"),
    [
        (float("nan"), "champion", "--margin nan"),
        (-0.5, "champion", "--margin -0.5: give a finite number, 0 or more"),
        (0.0, "latest", "'latest' is not a valid alias"),
    ],
)
def test_a_margin_or_alias_the_gate_cannot_use_is_refused_before_training(banking_slice, tmp_path, margin, alias, said):
    champion = api.train(config(tmp_path / "c", banking_slice, 2), output=tmp_path / "champion", quiet=True)
    with pytest.raises(UserError, match=said):
        retrain(str(champion.path), margin=margin, alias=alias, output=tmp_path / "challenger")
    assert not (tmp_path / "challenger").exists()


@pytest.mark.parametrize(
    ("beta", "tolerance", "said"), [(0.0, 0.05, "--beta 0.0"), (0.1, -0.1, "--loss-tolerance -0.1")]
)
def test_a_chat_gate_option_it_cannot_use_is_refused_before_anything_loads(tmp_path, beta, tolerance, said):
    with pytest.raises(UserError, match=said):
        retrain(str(tmp_path / "missing"), beta=beta, loss_tolerance=tolerance)


def test_a_champion_that_does_not_hold_the_alias_is_refused_and_the_alias_stays(banking_slice, tmp_path):
    """An older bundle folder given while a newer version holds `champion`: no gate against the wrong model."""
    from modelyard.tracking.runs import log_bundle

    old = api.train(config(tmp_path / "old", banking_slice, 2), output=tmp_path / "old-bundle", quiet=True)
    new = api.train(config(tmp_path / "new", banking_slice, 40), output=tmp_path / "new-bundle", quiet=True)
    log_bundle(old.path)
    held = str(log_bundle(new.path).version)
    registry.promote(NAME, held, "champion")
    with pytest.raises(UserError, match=f"'champion' of model '{NAME}' is version {held}, not the champion given"):
        retrain(str(old.path), output=tmp_path / "challenger")
    assert registry.describe(NAME).aliases == {"champion": held} and not (tmp_path / "challenger").exists()
    decision = retrain(str(new.path), output=tmp_path / "challenger")  # the holder itself is gated as before
    assert decision["champion"]["path"] == str(new.path)
