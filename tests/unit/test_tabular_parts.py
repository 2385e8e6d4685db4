"""The parts of tabular tasks one at a time: type inference and data checks, the encoder's row checks, risk
metrics, thresholds and calibration, on small real tables (the committed credit slice, scikit-learn's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.data import tabular
from modelyard.errors import DataError
from modelyard.learners import tabular_post as post
from modelyard.learners.tabular_encoding import TabularEncoder
from modelyard.metrics import risk

CREDIT = Path(__file__).resolve().parents[2] / "examples" / "data" / "credit_default" / "credit_default_2000.csv"
TARGET = "default.payment.next.month"


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    from modelyard.data.readers import read_table

    return read_table(CREDIT)[0]  # as the task reads it: every CSV cell a string


def _mixed(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "income": [str(round(v, 2)) for v in rng.normal(3000, 500, n)],
            "homeowner": rng.choice(["yes", "no"], n),
            "opened": [
                f"2024-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 28, n), strict=True)
            ],
            "branch": rng.choice(["north", "south", "east"], n),
            "note": [f"customer called about card number {i} and asked for a higher limit" for i in range(n)],
            "country": ["TW"] * n,
            "target": rng.integers(0, 2, n).astype(str),
        }
    )


def test_column_types_are_inferred_from_string_cells():
    types, dropped = tabular.infer_types(_mixed(), "target", {}, [])
    assert types == {
        "income": "numeric",
        "homeowner": "boolean",
        "opened": "date",
        "branch": "categorical",
        "note": "text",
    }
    assert "ID-like" in dropped["customer_id"] and "constant" in dropped["country"]
    assert "keep it with data.column_types: {customer_id: categorical}" in dropped["customer_id"]
    types, dropped = tabular.infer_types(_mixed(), "target", {"customer_id": "categorical"}, [])
    assert types["customer_id"] == "categorical" and "customer_id" not in dropped


def test_an_empty_column_is_named_empty_not_one_value():
    frame = _mixed().assign(blank="", nothing=None)
    _, dropped = tabular.infer_types(frame, "target", {}, [])
    assert dropped["blank"] == dropped["nothing"] == "constant: empty in every row"
    assert dropped["country"] == "constant: one value in every row"


def test_type_overrides_and_drops_come_from_the_config():
    types, _ = tabular.infer_types(_mixed(), "target", {"homeowner": "categorical"}, ["note"])
    assert types["homeowner"] == "categorical" and "note" not in types
    with pytest.raises(DataError, match="salary"):
        tabular.infer_types(_mixed(), "target", {"salary": "numeric"}, [])


def test_a_copy_of_the_label_is_named_as_leakage(credit):
    frame = credit.assign(paid_late_flag=credit[TARGET])
    types, _ = tabular.infer_types(frame, TARGET, {}, [])
    found = tabular.leakage(frame, types, frame[TARGET].astype(int).to_numpy(), "binary")
    assert list(found) == ["paid_late_flag"]


def test_imbalance_reports_the_ratio(credit):
    found = tabular.imbalance(credit[TARGET])
    assert found["minority"] == "1" and found["ratio"] == pytest.approx(1566 / 434, abs=0.01)


def test_time_split_puts_the_newest_rows_in_test():
    frame = _mixed()
    parts, notes = tabular.time_splits(frame, "opened", 0.1, 0.2)
    dates = {k: pd.to_datetime(v["opened"]) for k, v in parts.items()}
    assert dates["train"].max() <= dates["validation"].min() <= dates["validation"].max() <= dates["test"].min()
    assert "time-ordered" in notes[0] and len(parts["test"]) == 40


def test_the_encoder_checks_rows_against_the_training_schema(credit):
    types, _ = tabular.infer_types(credit, TARGET, {"EDUCATION": "categorical"}, [])
    encoder = TabularEncoder.fit(credit, types, ["ID", TARGET])
    assert encoder.check_row({"EDUCATION": 2, "AGE": "31", "ID": 7}) == [
        f"scored as missing values: {', '.join(c for c in types if c not in ('EDUCATION', 'AGE'))}"
    ]
    with pytest.raises(DataError, match="unknown column"):
        encoder.check_row({"SALARY": 1})
    with pytest.raises(DataError, match="AGE: expected a finite number"):
        encoder.check_row({"AGE": "thirty"})
    assert "unseen" in encoder.check_row({"EDUCATION": 77})[0]
    x = encoder.transform(pd.DataFrame([{"EDUCATION": 77}, {"EDUCATION": "2"}, {"EDUCATION": 2.0}]))
    col = encoder.feature_names.index("EDUCATION")
    assert x[0, col] == len(encoder.categories["EDUCATION"]) and x[1, col] == x[2, col]


def test_risk_metrics_match_their_definitions():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9])
    found = risk.binary_metrics(y, p, 0.5)
    assert found["gini"] == pytest.approx(2 * found["roc_auc"] - 1)
    assert found["ks"] == pytest.approx(0.8)  # at p >= 0.4: TPR 5/5, FPR 1/5
    assert found["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert found["confusion"] == {"tp": 4, "fp": 1, "fn": 1, "tn": 4}


def test_the_cost_threshold_flags_more_when_misses_cost_more():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 2000), 0, 1)
    cheap, _ = risk.cost_threshold(y, p, 1, 1)
    dear, _ = risk.cost_threshold(y, p, 1, 20)
    assert dear < cheap
    assert risk.at_threshold(y, p, risk.recall_threshold(y, p, 0.9))["recall"] >= 0.9


def test_the_cost_threshold_flags_tied_scores_together_and_reports_the_cost_of_its_cut():
    y, p = np.array([1] + [0] * 9), np.full(10, 0.3)
    assert risk.cost_threshold(y, p, 1, 5) == risk.cost_threshold(y[::-1], p, 1, 5) == (1.0 + 1e-9, 0.5)
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 300), rng.integers(0, 6, 300) / 5  # six distinct scores, many ties
    cut, per_row = risk.cost_threshold(y, p, 1, 3)
    confusion = risk.at_threshold(y, p, cut)["confusion"]
    assert per_row == pytest.approx((confusion["fp"] + 3 * confusion["fn"]) / 300)
    brute = min((np.sum((p >= c) & (y == 0)) + 3 * np.sum((p < c) & (y == 1))) / 300 for c in [*p, 2.0])
    assert per_row == pytest.approx(brute)
    shuffled = rng.permutation(300)
    assert risk.cost_threshold(y[shuffled], p[shuffled], 1, 3) == (cut, per_row)
    recall_cut = risk.recall_threshold(y, p, 0.5)
    assert risk.at_threshold(y, p, recall_cut)["recall"] >= 0.5 > risk.at_threshold(y, p, recall_cut + 0.1)["recall"]


def test_group_metrics_give_rates_and_gaps():
    y = np.array([1, 0, 1, 0, 1, 0])
    decided = np.array([1, 0, 1, 1, 0, 0])
    found = risk.group_metrics(y, decided, np.array(["a", "a", "a", "b", "b", "b"]))
    assert found["groups"]["a"]["tpr"] == 1.0 and found["groups"]["b"]["tpr"] == 0.0
    assert found["tpr_gap"] == 1.0 and found["fpr_gap"] == pytest.approx(0.5)
    # the share flagged in each group (all of them here), not the share that is positive (2 of 3, 1 of 3)
    flagged = risk.group_metrics(y, np.ones(6, dtype=int), np.array(["a", "a", "a", "b", "b", "b"]))
    assert flagged["groups"]["a"]["selection_rate"] == 1.0 and flagged["selection_rate_gap"] == 0.0


def test_multiclass_group_metrics_give_accuracy_and_per_class_rates_never_above_one():
    y = np.array([0, 1, 2, 2, 0, 1, 2, 2])
    decided = np.array([0, 1, 2, 1, 0, 0, 0, 2])
    found = risk.multiclass_group_metrics(y, decided, np.array(["a"] * 4 + ["b"] * 4), ["x", "y", "z"])
    a, b = found["groups"]["a"], found["groups"]["b"]
    assert a["accuracy"] == 0.75 and b["accuracy"] == 0.5 and found["accuracy_gap"] == 0.25
    assert a["selection_rate"] == {"x": 0.25, "y": 0.5, "z": 0.25} and b["selection_rate"] == {
        "x": 0.75,
        "y": 0.0,
        "z": 0.25,
    }
    assert a["recall"] == {"x": 1.0, "y": 1.0, "z": 0.5} and b["recall"] == {"x": 1.0, "y": 0.0, "z": 0.5}
    assert found["recall_gap"] == 1.0 and found["selection_rate_gap"] == 0.5


def test_regression_group_metrics_give_errors_and_mean_predictions():
    found = risk.regression_group_metrics(
        np.array([1.0, 3.0, 10.0, 20.0]), np.array([2.0, 3.0, 14.0, 20.0]), np.array(["a", "a", "b", "b"])
    )
    assert found["groups"]["a"] == {"rows": 2, "mae": 0.5, "mean_target": 2.0, "mean_prediction": 2.5}
    assert found["mae_gap"] == 1.5 and found["mean_prediction_gap"] == 14.5


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_brings_probabilities_to_observed_rates(method):
    rng = np.random.default_rng(1)
    p_true = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, 5000) < p_true).astype(int)
    skewed = p_true**3  # an under-confident score
    spec = post.fit_calibration(y, skewed, method)
    fixed = post.calibrate(skewed, spec)
    assert np.mean((fixed - y) ** 2) < np.mean((skewed - y) ** 2)


def test_isotonic_calibration_keeps_the_order_of_scores_so_roc_auc_is_unchanged():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    p_true = rng.uniform(0, 1, 3000)
    y = (rng.uniform(0, 1, 3000) < p_true).astype(int)
    raw = p_true**2
    spec = post.fit_calibration(y, raw, "isotonic")
    fixed = post.calibrate(raw, spec)
    inside = (raw > spec["x"][0]) & (raw < spec["x"][-1])  # beyond the outer block centres the map is flat
    assert np.all(np.diff(fixed[inside][np.argsort(raw[inside])]) > 0)
    assert roc_auc_score(y, fixed) == pytest.approx(roc_auc_score(y, raw), abs=2e-4)


@pytest.mark.parametrize(("power", "expected"), [(1, "platt"), (4, "isotonic")])
def test_auto_calibration_takes_the_map_with_the_lower_cross_validated_brier(power, expected):
    rng = np.random.default_rng(4)
    p_true = rng.uniform(0, 1, 4000)
    y = (rng.uniform(0, 1, 4000) < p_true).astype(int)
    spec = post.fit_calibration(y, p_true**power, "auto")  # power 4 bends the score beyond a sigmoid's reach
    assert spec["method"] == expected and "cross-validated Brier" in spec["chosen_by"]


def test_bagged_lightgbm_trains_on_validation_rows_and_scores_each_by_the_fold_model_that_held_it_out():
    from modelyard.learners import tabular_gbdt as gbdt

    rng = np.random.default_rng(5)
    x = rng.normal(size=(700, 4)).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 1, 700) > 0).astype(int)
    common = ("binary", 2, [], None, None, 0, {"min_child_samples": 10})
    bag, outputs = gbdt.fit_member(x[:600], y[:600], x[600:], y[600:], *common, folds=5)
    per_fold = np.stack([gbdt.gbdt_outputs(m, x[600:], "binary")[:, 1] for m in bag.models])  # (folds, rows)
    matches = np.isclose(per_fold, outputs[:, 1][None, :]).sum(0)
    assert outputs.shape == (100, 2) and np.all(matches == 1)  # each row: exactly the one model that never saw it


def test_the_ensemble_weights_a_better_member_more():
    rng = np.random.default_rng(2)
    y = rng.normal(size=500)
    good, poor = y + rng.normal(0, 0.3, 500), y + rng.normal(0, 1.0, 500)
    weights = post.greedy_ensemble({"good": good, "poor": poor}, lambda out: -np.sqrt(np.mean((out - y) ** 2)))
    assert weights["good"] > weights.get("poor", 0)


def test_conformal_half_width_covers_the_residuals():
    residuals = np.arange(1, 101, dtype=float)
    found = post.conformal_interval(residuals, np.zeros(100), coverage=0.9)
    assert found["half_width"] == 91.0  # the ceil((n + 1) 0.9) = 91st smallest


@pytest.mark.parametrize("task", ["tabular_classification", "tabular_regression"])
def test_the_starter_config_validates(task):
    import yaml

    from modelyard.tasks import config_from_dict, get_task

    config = config_from_dict(yaml.safe_load(get_task(task).starter_config()))
    assert config.task == task and config.model.backbone == "auto" and config.train.time_limit_s == 300


@pytest.mark.parametrize(
    ("bad", "problem"), [({"SALARY": 1}, "unknown column"), ({"AGE": "thirty"}, "AGE: expected a finite number")]
)
def test_a_bad_row_given_to_predict_is_named_by_its_index_as_the_server_names_it(credit, bad, problem):
    from modelyard.learners.tabular import TabularLearner, TabularSpec

    types, _ = tabular.infer_types(credit, TARGET, {"EDUCATION": "categorical"}, [])
    learner = TabularLearner(
        TabularSpec("binary", TARGET, ["0", "1"], TabularEncoder.fit(credit, types, [TARGET])), "auto"
    )
    with pytest.raises(DataError, match=rf"^inputs\.2: {problem}"):
        learner.predict([{"AGE": 31}, {"AGE": 40}, bad])


def test_a_half_trained_member_gets_no_ensemble_weight():
    from modelyard.learners.tabular import TabularLearner, TabularSpec

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 3000)
    good = np.clip(0.3 * y + rng.uniform(0, 0.7, 3000), 0, 1)
    weak = 0.5 + 0.01 * rng.uniform(-1, 1, 3000)  # barely trained: near-constant, no signal
    learner = TabularLearner(TabularSpec("binary", "y", ["0", "1"], TabularEncoder({})), "auto")
    weights = learner._select(y, {"lightgbm": np.stack([1 - good, good], 1), "mlp": np.stack([1 - weak, weak], 1)})
    assert weights == {"lightgbm": 1.0}


def test_two_members_with_independent_errors_are_kept_together_when_judged_out_of_fold():
    from modelyard.learners.tabular import TabularLearner, TabularSpec

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 6000)
    first = 1 / (1 + np.exp(-(y - 0.5 + rng.normal(0, 1.0, 6000))))
    second = 1 / (1 + np.exp(-(y - 0.5 + rng.normal(0, 1.0, 6000))))  # as good, errors independent of the first's
    learner = TabularLearner(TabularSpec("binary", "y", ["0", "1"], TabularEncoder({})), "auto")
    members = {"lightgbm": np.stack([1 - first, first], 1), "mlp": np.stack([1 - second, second], 1)}
    weights = learner._select(y, members)
    assert set(weights) == {"lightgbm", "mlp"}
    judged = next(c for c in learner.spec.candidates if c["backbone"] == "ensemble")
    assert judged["judged"].startswith("weights out of fold") and judged["validation"] > 0.7


def test_text_topics_round_trip_through_json_and_handle_blank_and_chinese_cells():
    import json

    from modelyard.learners import tabular_encoding

    frame = _mixed()
    encoder = TabularEncoder.fit(frame, {"note": "text", "income": "numeric"}, ["target"])
    names = encoder.feature_names
    assert names[:2] == ["note.chars", "note.words"] and names[2] == "note.topic0" and names[-1] == "income"
    again = TabularEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    cells = pd.DataFrame({"note": [frame["note"][0], None, "", "我的卡还没有到"], "income": ["1", "2", "3", "4"]})
    out = again.transform(cells)
    assert np.array_equal(out, encoder.transform(cells)) and out.shape == (4, len(names))
    assert np.abs(out[0, 2:-1]).sum() > 0 and not out[1:3, :-1].any()  # blank cells: no length, no topics
    few = TabularEncoder.fit(frame.head(tabular_encoding.TEXT_MIN_ROWS - 1), {"note": "text"}, [])
    assert few.feature_names == ["note.chars", "note.words"] and few.texts == {}


def test_an_ensemble_that_cannot_be_judged_out_of_fold_leaves_the_best_member_alone():
    from modelyard.learners.tabular import TabularLearner, TabularSpec

    y = np.array([0, 0, 0, 1, 1, 1, 2])  # the last class has one validation row: no two folds can both hold it
    first = np.eye(3)[y] * 0.6 + 0.1
    second = np.eye(3)[y] * 0.5 + np.eye(3)[(y + 1) % 3] * 0.2 + 0.1  # as good: both rank every row right
    learner = TabularLearner(TabularSpec("multiclass", "y", ["a", "b", "c"], TabularEncoder({})), "auto")
    assert len(learner._select(y, {"lightgbm": first, "mlp": second})) == 1
    judged = next(c for c in learner.spec.candidates if c["backbone"] == "ensemble")
    assert judged["judged"].startswith("too few validation rows per class")


def test_a_cell_that_is_not_a_finite_number_reads_as_missing():
    """JSON allows integers no float holds; infinities would reach the model; a datetime is not a quantity."""
    cells = pd.Series([10**400, -(10**400), " 3 ", "inf", float("-inf"), "x", 5], dtype=object)
    assert tabular.to_numeric(cells).isna().tolist() == [True, True, False, True, True, True, False]
    assert tabular.to_numeric(pd.Series([1.5, np.inf])).isna().tolist() == [False, True]
    assert tabular.to_numeric(pd.Series(pd.to_datetime(["2020-01-01"]))).isna().all()


def test_dates_with_offsets_keep_their_wall_time_and_mixed_offsets_share_utc():
    same = tabular.to_dates(pd.Series(["2021-03-05T23:30:00+05:00", "2021-03-06T08:00:00+05:00"]))
    assert same.dt.tz is None and same.dt.hour.tolist() == [23, 8]
    mixed = tabular.to_dates(pd.Series(["2021-03-01T10:00:00Z", "2021-03-02T10:00:00+02:00", "2021-03-03", "x"]))
    assert mixed.dt.tz is None and mixed.dt.hour.tolist()[:3] == [10, 8, 0] and pd.isna(mixed.iloc[3])
    encoder = TabularEncoder({"opened": "date"}, {}, [])
    assert np.isfinite(encoder.transform(pd.DataFrame({"opened": mixed.astype(str)})[:3])).all()


def test_numeric_dates_take_one_day_order_per_column_learnt_in_training_and_kept_for_requests():
    column = pd.Series(["28/09/2021", "05/06/2021", "2021-05-06", None])
    assert tabular.to_dates(column).dt.strftime("%m-%d").tolist()[:3] == ["09-28", "06-05", "05-06"]
    assert tabular.day_first(pd.Series(["09/28/2021", "05/06/2021"])) is False
    assert tabular.day_first(pd.Series(["28/09/2021", "09/28/2021"])) is None  # the values disagree
    encoder = TabularEncoder.fit(pd.DataFrame({"opened": column}), {"opened": "date"}, [])
    again = TabularEncoder.from_json(encoder.to_json())
    one = again.transform(pd.DataFrame({"opened": ["05/06/2021"]}))  # a request alone cannot tell its order
    assert one[0, :2].tolist() == [2021, 6]  # year, month: read day-first as the training column was


def test_a_date_sent_as_a_number_is_read_as_its_text_when_checked_and_when_scored():
    encoder = TabularEncoder.fit(pd.DataFrame({"opened": ["2021-06-01", "2021-07-15"]}), {"opened": "date"}, [])
    assert encoder.check_row({"opened": 20210601}) == []
    for cells in ([20210601], [20210601.0], pd.Series([20210601], dtype=object)):
        assert encoder.transform(pd.DataFrame({"opened": cells}))[0, :2].tolist() == [2021, 6]  # not 1970
    assert encoder.check_frame(pd.DataFrame({"opened": [20210601, 7]}))["wrong_type"] == {"opened": [1]}
    with pytest.raises(DataError, match="opened: expected a date"):
        encoder.check_row({"opened": True})


def test_a_whole_number_written_as_2_0_is_the_same_category_as_2_in_training_and_in_requests():
    column = pd.Series(["2.0", "2", "2.0", "1.0", "1", None, "3.0"] * 20)  # pandas writes an int column with NaN as 2.0
    encoder = TabularEncoder.fit(pd.DataFrame({"EDUCATION": column}), {"EDUCATION": "categorical"}, [])
    assert encoder.categories["EDUCATION"] == ["2", "1", "3"]  # by frequency: 60, 40, 20 rows
    for value in (2, 2.0, "2", "2.0", np.float32(2)):
        assert encoder.check_row({"EDUCATION": value}) == []
    codes = encoder.transform(pd.DataFrame({"EDUCATION": [2, 2.0, "2", "2.0", "02", "2.5"]}))[:, 0]
    assert codes[:4].tolist() == [0, 0, 0, 0] and codes[4:].tolist() == [3, 3]  # "02", "2.5": other


def test_a_bundle_saved_with_2_0_in_its_vocabulary_matches_2_at_the_same_code():
    old = TabularEncoder.from_json({"types": {"EDUCATION": "categorical"}, "categories": {"EDUCATION": ["2.0", "1.0"]}})
    assert old.check_row({"EDUCATION": 2}) == []
    assert old.transform(pd.DataFrame({"EDUCATION": ["2.0", 1, "7"]}))[:, 0].tolist() == [0, 1, 2]


def test_the_profile_counts_nan_text_in_a_numeric_column_as_missing():
    frame = pd.DataFrame({"income": ["1200", "nan", "NaN", "", None, "inf", "3400", "5.5"]})
    profile = tabular.column_profile(frame, {"income": "numeric"})["income"]
    assert profile["missing"] == 0.625 and (profile["min"], profile["max"]) == (5.5, 3400.0)


def test_a_missing_value_is_fingerprinted_as_an_empty_field():
    from modelyard.data.splits import fingerprint

    with_nan = pd.DataFrame({"x": [1.0, np.nan], "s": ["a", None]})
    as_csv = pd.DataFrame({"x": ["1.0", ""], "s": ["a", ""]})
    assert fingerprint(with_nan, ["x", "s"]) == fingerprint(as_csv, ["x", "s"])


def test_pandas_missing_markers_in_a_row_are_scored_as_missing_like_none(credit):
    types, _ = tabular.infer_types(credit, TARGET, {"EDUCATION": "categorical"}, [])
    encoder = TabularEncoder.fit(credit, types, ["ID", TARGET])
    full = credit.drop(columns=[TARGET]).iloc[0].to_dict()
    for marker in (float("nan"), np.float64("nan"), pd.NA, pd.NaT, None):
        assert encoder.check_row(full | {"AGE": marker}) == ["scored as missing values: AGE"]
    with pytest.raises(DataError, match="AGE: expected a finite number"):
        encoder.check_row(full | {"AGE": float("inf")})


@pytest.mark.parametrize(
    ("kind", "target", "metric"), [("binary", TARGET, "roc_auc"), ("regression", "LIMIT_BAL", "rmse")]
)
def test_validation_metrics_of_a_bagged_model_are_its_out_of_fold_scores_not_in_sample(credit, kind, target, metric):
    from modelyard.learners.tabular import TabularLearner, TabularSpec

    types, _ = tabular.infer_types(credit, target, {}, [])
    train, validation = credit.iloc[:1200], credit.iloc[1200:1600]
    labels = ["0", "1"] if kind == "binary" else None
    spec = TabularSpec(kind, target, labels, TabularEncoder.fit(train, types, [target]))
    learner = TabularLearner(spec, "lightgbm", {"folds": 5, "calibration": "none", "seed": 0})
    learner.fit(train, validation)
    out_of_fold = learner.spec.candidates[0]["validation"][metric]
    reported = learner.evaluate(validation.copy())[metric]  # an equal frame, as a resumed run would pass
    in_sample = learner.evaluate(validation.assign(extra=1))[metric]  # another frame: scored by the whole bag
    assert reported == pytest.approx(out_of_fold)
    assert abs(in_sample - out_of_fold) > 0.01 * abs(out_of_fold)  # what used to be reported
