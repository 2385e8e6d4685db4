"""Recommendation parts on hand-made interactions: implicit feedback, leave-last-out, ranking, cold start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.data.interactions import implicit_feedback, leave_last_out
from modelyard.errors import DataError
from modelyard.learners.recommender import RecommenderLearner, RecommendInput, popularity_baseline
from modelyard.metrics.ranking import ranking_metrics, top_k
from modelyard.tasks.recommendation import RecModelConfig


def ratings() -> pd.DataFrame:
    rows = [  # user, item, rating, time
        ("u1", "a", 5, 1),
        ("u1", "b", 4, 2),
        ("u1", "c", 2, 3),
        ("u1", "d", 5, 4),
        ("u1", "e", 4, 5),
        ("u2", "a", 5, 3),
        ("u2", "b", 1, 1),
        ("u2", "c", 4, 2),
        ("u3", "a", 4, 9),
        ("u3", "c", 5, 8),
        ("u3", "d", 5, 7),
        ("u3", "b", 3, 10),
    ]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "time"]).astype(str)
    return frame.set_index(pd.RangeIndex(2, 2 + len(frame)))


def prepared(seed: int = 0, timed: bool = True):
    frame, report = implicit_feedback(ratings(), "user", "item", "rating", "time" if timed else None, 4.0, "r.csv")
    return frame, report, leave_last_out(frame, seed, timed=timed)


def test_ratings_at_or_above_the_threshold_are_positives():
    frame, report, _ = prepared()
    assert report["positives"] == 9 and report["interactions"] == 12
    assert set(frame[~frame["positive"]]["item"] + frame[~frame["positive"]]["user"]) == {"cu1", "bu2", "bu3"}


def test_leave_last_out_holds_out_each_users_latest_positives_by_time():
    _, _, (splits, report) = prepared()
    test = dict(splits["test"].targets.itertuples(index=False))
    validation = dict(splits["validation"].targets.itertuples(index=False))
    assert test == {"u1": "e", "u3": "a"} and validation == {"u1": "d", "u3": "c"}
    assert report["train_only_users"] == 1  # u2 has two positives: it only trains
    train = set(splits["train"].targets.itertuples(index=False))
    assert ("u1", "e") not in train and ("u1", "d") not in train and ("u2", "a") in train
    test_history = set(splits["test"].history.itertuples(index=False))
    assert ("u1", "d") in test_history and (
        "u1",
        "c",
    ) in test_history  # earlier and disliked items are excluded
    assert ("u1", "e") not in set(splits["validation"].history.itertuples(index=False))  # no future in validation


def test_without_times_the_hold_out_is_random_but_seeded():
    first = prepared(seed=1, timed=False)[2][0]["test"].targets
    again = prepared(seed=1, timed=False)[2][0]["test"].targets
    assert first.equals(again) and len(first) == 2


def test_ranking_metrics_on_a_hand_computed_example():
    top = np.array([[3, 1, 4, 0, 2], [0, 1, 2, 3, 4]])
    relevant = [[1, 2], [-1]]  # user 2's only relevant item is not in the catalogue (-1)
    m = ranking_metrics(top, relevant, num_items=10, ks=(2, 5))
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["hit_rate@2"] == pytest.approx(0.5)
    ndcg_user1 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert m["ndcg@2"] == pytest.approx(ndcg_user1 / 2)
    ndcg5 = (1 / np.log2(3) + 1 / np.log2(6)) / (1 + 1 / np.log2(3))
    assert m["recall@5"] == pytest.approx(0.5) and m["ndcg@5"] == pytest.approx(ndcg5 / 2)
    assert m["coverage@2"] == pytest.approx(3 / 10) and m["coverage@5"] == pytest.approx(5 / 10)


def test_top_k_never_returns_an_excluded_item():
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    assert top_k(scores, [[0, 3]], 2).tolist() == [[1, 2]]


def test_top_k_beyond_the_items_left_ends_in_minus_ones_instead_of_excluded_items():
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    assert top_k(scores, [[0, 3], []], 5).tolist() == [[1, 2, -1, -1, -1], [3, 2, 1, 0, -1]]


def test_coverage_counts_only_listed_items():
    m = ranking_metrics(np.array([[1, -1], [2, -1]]), [[1], [0]], num_items=4, ks=(2,))
    assert m["coverage@2"] == pytest.approx(2 / 4) and m["recall@2"] == pytest.approx(0.5)


def test_offline_rankings_of_a_small_catalogue_never_list_an_item_the_user_has_seen():
    from modelyard.data.interactions import Interactions
    from modelyard.learners.recommender import rank_split

    split = Interactions(
        pd.DataFrame({"user": ["u1"], "item": ["c"]}), pd.DataFrame({"user": ["u1", "u1"], "item": ["a", "b"]})
    )
    items = {"a": 0, "b": 1, "c": 2, "d": 3}
    top, relevant = rank_split(split, {"u1": 0}, items, lambda rows: np.ones((len(rows), 4)))
    assert top.shape == (1, 20) and set(top[0]) == {2, 3, -1} and relevant == [[2]]


def test_popularity_baseline_scores_validation_and_test():
    _, _, (splits, _) = prepared()
    result = popularity_baseline(splits)
    assert set(result) == {"validation", "test"}
    # training positives: a twice, b, c and d once; test: u1's e (never in training, so out of reach) and u3's a,
    # which the baseline ranks first: half the users hit, at rank 1
    assert result["test"]["recall@10"] == pytest.approx(0.5) and result["test"]["ndcg@10"] == pytest.approx(0.5)


def learner() -> RecommenderLearner:
    _, _, (splits, _) = prepared()
    return RecommenderLearner.build(RecModelConfig(dim=4), splits)


def test_an_unknown_user_gets_popular_items_and_is_told_it_is_a_cold_start():
    answer = learner().predict([{"user": "stranger", "k": 2}])[0]
    assert answer["cold_start"] is True
    assert answer["items"][0]["item"] == "a"  # the most liked item in training
    assert answer["items"][0]["score"] > answer["items"][1]["score"]


def test_a_known_user_never_gets_an_item_it_already_has():
    answer = learner().predict([RecommendInput(user="u2", k=10)])[0]
    assert answer["cold_start"] is False
    assert [x["item"] for x in answer["items"]] == ["d"]  # u2 has a, b and c
    assert learner().predict([{"user": "u1", "k": 10}])[0]["items"] == []  # u1 has every item


def with_a_user_who_liked_nothing() -> tuple[dict, dict, dict]:
    """ratings() plus u4, whose every rating is below the threshold (MovieLens user 685 is one)."""
    extra = pd.DataFrame([("u4", "a", "2", "1"), ("u4", "d", "1", "2")], columns=["user", "item", "rating", "time"])
    frame = pd.concat([ratings(), extra], ignore_index=True).set_index(pd.RangeIndex(2, 16))
    interactions, report = implicit_feedback(frame, "user", "item", "rating", "time", 4.0, "r.csv")
    splits, split_report = leave_last_out(interactions, 0, timed=True)
    return report, splits, split_report


def test_a_user_without_a_positive_is_cold_but_never_gets_an_item_it_rated(tmp_path):
    _, splits, _ = with_a_user_who_liked_nothing()
    built = RecommenderLearner.build(RecModelConfig(dim=4), splits)
    built.save(tmp_path)
    for model in (built, RecommenderLearner.load(tmp_path)):
        answer = model.predict([{"user": "u4", "k": 10}])[0]
        assert answer["cold_start"] is True
        assert sorted(x["item"] for x in answer["items"]) == ["b", "c"]  # u4 rated a and d, both below 4
        assert "u4" in set(model.seen_pairs()["user"])  # so evaluating a new file excludes them too


def test_users_without_a_positive_are_counted_and_named_so_the_split_adds_up_to_the_users():
    report, _, split = with_a_user_who_liked_nothing()
    assert split["no_positive_users"] == 1 and split["no_positive_examples"] == ["u4"]
    assert split["evaluated_users"] + split["train_only_users"] + split["no_positive_users"] == report["users"] == 4


def test_validate_warns_about_users_without_a_positive_naming_them(tmp_path):
    import yaml

    import modelyard

    extra = pd.DataFrame([("u4", "a", "2", "1")], columns=["user", "item", "rating", "time"])
    pd.concat([ratings(), extra]).to_csv(tmp_path / "r.csv", index=False)
    config = {"name": "r", "task": "recommendation", "data": {"train": "r.csv", "rating_column": "rating"}}
    config["data"] |= {"rating_threshold": 4, "time_column": "time"}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    warnings = modelyard.validate(tmp_path / "r.yaml").warnings
    assert any("1 users have no positive interaction" in w and "u4" in w for w in warnings), warnings


def test_more_like_this_ranks_other_items_by_similarity():
    answer = learner().predict([{"item": "a", "k": 2}])[0]
    assert len(answer["items"]) == 2 and "a" not in [x["item"] for x in answer["items"]]


def test_more_like_this_never_answers_the_item_itself_when_k_exceeds_the_catalogue():
    answer = learner().predict([{"item": "a", "k": 1000}])[0]
    listed = [x["item"] for x in answer["items"]]
    scores = [x["score"] for x in answer["items"]]
    assert sorted(listed) == ["b", "c", "d"] and scores == sorted(scores, reverse=True)


def test_a_request_names_exactly_one_of_user_or_item():
    with pytest.raises(ValueError, match="exactly one"):
        RecommendInput(user="u1", item="a")
    with pytest.raises(DataError, match="unknown item"):
        learner().parse_input({"item": "zzz"})


def requests_from(frame: pd.DataFrame) -> list[RecommendInput]:
    from types import SimpleNamespace

    from modelyard.tasks.recommendation import RecommendationTask

    config = SimpleNamespace(data=SimpleNamespace(user_column="user", item_column="item"))
    return RecommendationTask().inputs_from_frame(frame.set_index(pd.RangeIndex(2, 2 + len(frame))), config)


def test_empty_csv_cells_count_as_absent_so_an_item_row_asks_for_similar_items_with_the_default_k():
    frame = pd.DataFrame({"user": ["196", ""], "item": ["", "50"], "k": ["", "3"]})  # CSV cells are text
    first, second = requests_from(frame)
    assert (first.user, first.item, first.k) == ("196", None, 10)
    assert (second.user, second.item, second.k) == (None, "50", 3)


def test_json_lines_of_mixed_requests_keep_integer_ids_as_the_http_api_takes_them():
    frame = pd.DataFrame([{"user": 1, "k": 2}, {"item": 50, "k": 2}, {"user": 7}])  # pandas makes the ids float
    assert frame["user"].dtype == float
    answers = [(r.user, r.item, r.k) for r in requests_from(frame)]
    assert answers == [("1", None, 2), (None, "50", 2), ("7", None, 10)]


def test_a_row_with_both_a_user_and_an_item_is_refused_naming_its_line_in_one_line():
    with pytest.raises(DataError, match="line 3: not a recommendation request") as err:
        requests_from(pd.DataFrame({"user": ["1", "2"], "item": ["", "50"]}))
    assert "\n" not in err.value.message and "pydantic" not in err.value.message


@pytest.mark.parametrize(
    ("frame", "blank"),
    [
        (pd.DataFrame({"user": ["196", "22", "", "186"]}), "line 4: not a recommendation request: 'user' is empty"),
        (pd.DataFrame({"user": ["196", ""], "item": ["", ""]}), "line 3: .*: 'user' and 'item' are both empty"),
    ],
)
def test_a_row_with_a_blank_user_is_refused_naming_the_file_line_and_column(frame, blank):
    frame.attrs["source"] = "req.csv"  # as predict_io.frame_inputs sets it
    with pytest.raises(DataError, match=f"^req.csv: {blank}\n") as err:
        requests_from(frame)
    assert "remove the row" in err.value.hint


@pytest.mark.parametrize(("request_", "problem"), [({"user": True}, "true is not an id"), ({"user": " "}, "empty")])
def test_a_boolean_or_blank_user_is_refused_naming_the_field(request_, problem):
    with pytest.raises(DataError, match=f"user: .*{problem}"):
        learner().predict([request_])


def test_float_ids_from_a_column_with_a_missing_value_are_stored_as_integers():
    frame = ratings().assign(user=[1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 10.0, 10.0, 3.0, 3.0, 3.0, np.nan])
    out, report = implicit_feedback(frame, "user", "item", "rating", "time", 4.0, "r.parquet")
    assert sorted(out["user"].unique()) == ["1", "10", "3"] and report["dropped_incomplete"] == 1


def test_infinite_ratings_are_dropped_and_ratings_far_off_the_scale_are_named():
    frame = ratings()
    frame.loc[3, "rating"], frame.loc[4, "rating"], frame.loc[5, "rating"] = "inf", "99", "-3"
    _, report = implicit_feedback(frame, "user", "item", "rating", "time", 4.0, "r.csv")
    assert report["dropped_incomplete"] == 1 and report["dropped_examples"] == ["line 3"]
    assert report["odd_ratings"] == 2 and report["odd_rating_examples"] == ["line 4: 99", "line 5: -3"]


def test_validate_refuses_an_early_stopping_metric_recommendation_does_not_report(tmp_path):
    import yaml

    import modelyard
    from modelyard.errors import ConfigError

    ratings().to_csv(tmp_path / "r.csv", index=False)
    config = {
        "name": "r",
        "task": "recommendation",
        "data": {"train": "r.csv", "rating_column": "rating", "rating_threshold": 4},
        "train": {"early_stopping": {"metric": "recall@50", "patience": 2}},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="'recall@50'") as err:
        modelyard.validate(tmp_path / "r.yaml")
    assert "recall@10" in err.value.hint and "coverage@20" in err.value.hint


def test_the_validate_report_prints_the_leave_last_out_split(tmp_path, capsys):
    from types import SimpleNamespace

    from modelyard.commands.console import data_report

    data_report(SimpleNamespace(report={"split": {"rule": "leave-last-out per user"}}, warnings=[]))
    assert "leave-last-out per user" in capsys.readouterr().err
