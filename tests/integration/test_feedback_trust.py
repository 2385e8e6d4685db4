"""Feedback is imported whole or not at all, malformed files are clear errors, and retrain never trains on
feedback whose text is in the frozen test split (which would inflate the challenger's score)."""

from __future__ import annotations

import sqlite3
import sys
import time

import pandas as pd
import pytest
from conftest import write_config

from modelyard.errors import UserError
from modelyard.monitoring.feedback import import_feedback
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, db_path, read_predictions

MODEL = "test-tfidf-linear"  # the name write_config gives the tfidf_bundle fixture


def log_predictions(texts: list[str]) -> list[str]:
    """Logged predictions of MODEL for `texts` (as the server writes them); their ids."""
    writer = PredictionLogWriter()
    ids = [f"p{i}" for i in range(len(texts))]
    now = time.time()
    writer.append([PredictionRecord(f"p{n}", now + n, MODEL, "1", t, {"label": "x"}, 1.0) for n, t in enumerate(texts)])
    writer.flush()
    writer.close()
    return ids


def labelled() -> pd.Series:
    return read_predictions(model=MODEL)["label"].dropna()


def test_a_row_that_fails_while_writing_leaves_nothing_imported_and_is_named(tfidf_bundle, tmp_path):
    ids = log_predictions(["a", "b", "c"])
    conn = sqlite3.connect(db_path())  # the database refuses row 3's write, as a full disk or a lock would
    conn.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE OF label ON predictions WHEN NEW.prediction_id = 'p2' "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    conn.commit()
    conn.close()
    path = tmp_path / "feedback.csv"
    path.write_text("prediction_id,label\n" + "".join(f"{i},activate_my_card\n" for i in ids))
    with pytest.raises(UserError, match=r"line 4.*nothing was imported"):
        import_feedback(path, str(tfidf_bundle))
    assert labelled().empty


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("prediction_id,label\np0,activate_my_card\np1,activate_my_card,extra\n", "line 3"),
        ('prediction_id,label\np0,activate_my_card\n"p1,activate_my_card\n', "line 3"),
        (b"prediction_id,label\np0,\xff\xfe\n", "line 2"),
    ],
    ids=["extra-field", "unclosed-quote", "not-utf8"],
)
def test_a_malformed_csv_is_one_clear_error_naming_its_line_and_exit_1(
    tfidf_bundle, tmp_path, monkeypatch, capsys, content, where
):
    from modelyard import cli

    log_predictions(["a", "b"])
    path = tmp_path / "feedback.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setattr(sys, "argv", ["modelyard", "feedback", "import", str(path), "--model", str(tfidf_bundle)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    err = capsys.readouterr().err
    assert done.value.code == 1, err
    assert where in err and "Traceback" not in err
    assert labelled().empty


@pytest.mark.slow
def test_retrain_leaves_out_feedback_whose_text_is_in_the_test_split_and_says_how_many(
    tfidf_bundle, banking_slice, tmp_path
):
    import json

    from modelyard.monitoring.retrain import retrain

    test = pd.read_csv(banking_slice / "test.csv")
    asks = ["please send my new card", "what rate do you use for euros", "my top up failed again"]
    fresh = [f"{ask} ({n})" for n in range(3) for ask in asks]  # distinct inputs: held out one row each
    texts = [*test["text"].head(12), *fresh]  # oldest first: the newest quarter is held out for scoring
    ids = log_predictions(texts)
    labels = [*test["category"].head(12), *["activate_my_card"] * len(fresh)]
    path = tmp_path / "feedback.csv"
    pd.DataFrame({"prediction_id": ids, "label": labels}).to_csv(path, index=False)
    import_feedback(path, str(tfidf_bundle))
    decision = retrain(write_config(banking_slice, "tfidf-linear"), str(tfidf_bundle), output=tmp_path / "challenger")
    feedback = decision["feedback"]
    assert feedback["in_test_split"] == 12
    assert feedback["used_for_training"] + feedback["held_out"] + feedback["in_test_split"] == len(texts)
    report = json.loads((tmp_path / "challenger" / "data_report.json").read_text())
    assert report["leakage"]["test"] == 0  # no test text reached the challenger's training data
