"""Forecasting parts on small hand-made series: gaps, splits, baselines, metrics, seasons, the LSTM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from modelyard.data.timeseries import Series, chronological_splits, detect_season, regularise, window_origins
from modelyard.errors import DataError
from modelyard.metrics.forecast import (
    forecast_metrics,
    mase_scale,
    naive_forecast,
    seasonal_naive_forecast,
)
from modelyard.models.lstm import LSTMConfig, LSTMForecaster


def daily(values: list[float | None], start: str = "2024-01-01", drop: tuple[int, ...] = ()) -> pd.DataFrame:
    dates = pd.date_range(start, periods=len(values), freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"date": dates, "value": [None if v is None else str(v) for v in values]})
    return frame.drop(index=list(drop)).set_index(pd.RangeIndex(2, 2 + len(values) - len(drop)))


def make_series(values: np.ndarray) -> Series:
    times = pd.date_range("2020-01-01", periods=len(values), freq="D")
    return Series("", times, np.asarray(values, dtype=float), np.ones(len(values), dtype=bool))


def test_lstm_maps_a_batch_of_windows_to_one_value_per_horizon_step():
    model = LSTMForecaster(LSTMConfig(context_length=16, horizon=5, inputs=1, hidden_size=8, layers=2))
    assert model(torch.randn(3, 16, 1)).shape == (3, 5)


def test_missing_timestamps_are_reported_and_filled_by_time_interpolation():
    series, report = regularise(
        daily([1, 2, 3, 4, 5, 6], drop=(2, 3)), "date", "value", None, None, "interpolate", "f.csv"
    )
    info = report["series"]["(single)"]
    assert info["missing_timestamps"] == 2 and info["missing_timestamps_examples"] == [
        "2024-01-03",
        "2024-01-04",
    ]
    assert info["frequency"] == "1D" and report["gaps_filled"] == 2 and "interpolate" in report["fill_rule"]
    np.testing.assert_allclose(series[0].values, [1, 2, 3, 4, 5, 6])
    assert series[0].observed.tolist() == [True, True, False, False, True, True]


def test_gaps_after_the_training_part_are_filled_from_earlier_values_only():
    def prepared(last: float) -> Series:
        frame = daily([1, 2, 3, 4, 5, 6, 7, 8, last], drop=(2, 6, 7)).assign(temp=[str(v) for v in range(6)])
        series, _ = regularise(frame, "date", "value", None, None, "interpolate", "f.csv", ["temp"], lambda n: 5)
        return series[0]

    series = prepared(9.0)
    np.testing.assert_allclose(series.values, [1, 2, 3, 4, 5, 6, 6, 6, 9])  # interpolated in training, then ffill
    np.testing.assert_allclose(series.covariates[:, 0], [0, 1, 1.5, 2, 3, 4, 4, 4, 5])
    np.testing.assert_allclose(prepared(900.0).values[:8], series.values[:8])  # a later value changes no input


def test_missing_values_are_filled_by_the_stated_rule():
    series, report = regularise(daily([1.0, None, 7.0]), "date", "value", None, None, "ffill", "f.csv")
    assert series[0].values.tolist() == [1.0, 1.0, 7.0] and report["gaps_filled"] == 1


def test_months_with_a_missing_month_keep_a_monthly_frequency():
    frame = pd.DataFrame({"m": ["2020-01", "2020-02", "2020-04", "2020-05", "2020-06"], "y": ["1"] * 5})
    series, report = regularise(frame, "m", "y", None, None, "interpolate", "f.csv")
    assert report["series"]["(single)"]["frequency"] == "1MS" and len(series[0].values) == 6


def test_several_series_are_keyed_by_their_id_column():
    frame = pd.concat([daily([1, 2, 3]).assign(shop="a"), daily([7, 8, 9, 10]).assign(shop="b")])
    series, _ = regularise(frame, "date", "value", "shop", None, "interpolate", "f.csv")
    assert [(s.key, len(s.values)) for s in series] == [("a", 3), ("b", 4)]


def test_unparseable_dates_stop_with_the_column_named():
    frame = pd.DataFrame({"date": ["soon", "later", "never"], "value": ["1", "2", "3"]})
    with pytest.raises(DataError, match="'date'"):
        regularise(frame, "date", "value", None, None, "interpolate", "f.csv")


def test_chronological_split_never_lets_training_see_later_values():
    splits = chronological_splits([make_series(np.arange(100.0))], validation=0.1, test=0.2, horizon=5, min_train=20)
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    assert len(train.series[0].values) == 70 and validation.starts == [70] and test.starts == [80]
    assert train.series[0].values.max() == 69  # nothing from validation or test
    for split, (lo, hi) in ((train, (0, 70)), (validation, (70, 80)), (test, (80, 100))):
        for i, t in window_origins(split, context=10, horizon=5):
            assert lo <= t and t + 5 <= hi and len(split.series[i].values) <= hi


def test_a_series_too_short_for_context_and_horizon_is_refused_with_a_hint():
    with pytest.raises(DataError, match="context_length"):
        chronological_splits([make_series(np.arange(30.0))], 0.1, 0.1, horizon=5, min_train=40)


def test_naive_and_seasonal_naive_forecasts_on_a_hand_made_series():
    history = np.array([1.0, 2, 3, 4, 10, 20, 30, 40])
    assert naive_forecast(history, 3).tolist() == [40, 40, 40]
    assert seasonal_naive_forecast(history, 6, season=4).tolist() == [10, 20, 30, 40, 10, 20]
    assert seasonal_naive_forecast(history[:3], 2, season=4).tolist() == [3, 3]  # too short: naive


def test_metrics_over_the_whole_horizon_on_a_hand_computed_example():
    actual = np.array([[10.0, 20.0], [30.0, 40.0]])
    forecast = np.array([[12.0, 20.0], [27.0, 44.0]])
    m = forecast_metrics(actual, forecast, scale=np.array([1.0, 2.0]), observed=np.ones((2, 2), dtype=bool))
    assert m["mae"] == pytest.approx(9 / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 0 + 9 + 16) / 4))
    assert m["mape"] == pytest.approx(100 * (0.2 + 0 + 0.1 + 0.1) / 4)
    assert m["mase"] == pytest.approx((2 + 0 + 1.5 + 2) / 4)
    assert m["mae_by_step"] == pytest.approx([2.5, 2.0])


def test_mape_skips_zero_actual_values_and_says_how_many():
    m = forecast_metrics(np.array([[0.0, 10.0]]), np.array([[5.0, 11.0]]), np.ones(1), np.ones((1, 2), dtype=bool))
    assert m["mape"] == pytest.approx(10.0) and m["mape_skipped_zeros"] == 1 and np.isfinite(m["mae"])
    all_zero = forecast_metrics(np.zeros((1, 2)), np.ones((1, 2)), np.ones(1), np.ones((1, 2), dtype=bool))
    assert all_zero["mape"] is None


def test_filled_gap_values_are_not_scored():
    observed = np.array([[True, False]])
    m = forecast_metrics(np.array([[1.0, 100.0]]), np.array([[2.0, 0.0]]), np.ones(1), observed)
    assert m["mae"] == 1.0 and m["points"] == 1


def test_mase_scale_is_the_in_sample_seasonal_naive_error():
    assert mase_scale(np.array([1.0, 2, 3, 5, 6, 7]), season=3) == pytest.approx(4.0)
    assert mase_scale(np.array([1.0, 3, 5]), season=12) == pytest.approx(2.0)  # too short: lag 1


def test_season_detection_finds_the_period_of_a_trending_seasonal_series():
    t = np.arange(144)
    rng = np.random.default_rng(0)
    series = 100 + t + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, len(t))
    assert detect_season(series) == 12
    assert detect_season(rng.normal(size=300)) == 1


def test_covariates_are_regularised_and_read_as_extra_input_channels():
    from modelyard.learners.forecast import ForecastLearner
    from modelyard.tasks.forecasting import ForecastModelConfig

    frame = daily(list(range(1, 41)), drop=(5,)).assign(promo=[str(i % 2) for i in range(39)])
    series, _ = regularise(frame, "date", "value", None, None, "interpolate", "f.csv", ["promo"])
    assert series[0].covariates.shape == (40, 1) and np.isfinite(series[0].covariates).all()
    splits = chronological_splits(series, 0.1, 0.1, horizon=3, min_train=10)
    options = ForecastModelConfig(context_length=5, horizon=3, hidden_size=4, layers=1)
    learner = ForecastLearner.build(options, splits["train"], "auto", ["promo"])
    assert learner.dataset(splits["train"], training=False).x.shape[1:] == (5, 2)
    with pytest.raises(DataError, match="covariates"):
        learner.predict([{"history": [1.0] * 5}])
    answer = learner.predict([{"history": [1.0] * 5, "covariates": [[0.0]] * 5}])[0]
    assert len(answer["forecast"]) == 3
    with pytest.raises(DataError, match="at most 3"):
        learner.predict([{"history": [1.0] * 5, "covariates": [[0.0]] * 5, "horizon": 4}])


def write_config(folder, values: list[float], **sections) -> str:
    """A daily series and a small forecasting config in `folder`; `sections` update data/model/train."""
    import yaml

    daily(values).to_csv(folder / "base.csv", index=False)
    config = {
        "name": "f",
        "task": "forecasting",
        "data": {"train": "base.csv", **sections.get("data", {})},
        "model": {"horizon": 7, "context_length": 14, "hidden_size": 8, "layers": 1, **sections.get("model", {})},
        "train": {"epochs": 1, **sections.get("train", {})},
    }
    (folder / "f.yaml").write_text(yaml.safe_dump(config))
    return str(folder / "f.yaml")


def sine(n: int = 120, level: float = 10.0) -> list[float]:
    return list(np.round(level + np.sin(2 * np.pi * np.arange(n) / 7), 3))


def test_a_test_part_gap_is_filled_from_the_value_before_it_not_from_the_value_a_forecast_predicts(tmp_path):
    from modelyard.tasks import load_config
    from modelyard.tasks.forecasting import ForecastingTask

    values: list[float | None] = list(range(1, 121))
    values[110] = None  # in the test part (the last 12 points of 120)
    test = ForecastingTask().prepare(load_config(write_config(tmp_path, values))).splits["test"].series[0]
    assert test.values[110] == 110.0 and not test.observed[110]


def test_infinite_targets_and_covariates_count_as_missing_and_are_filled():
    frame = daily([1.0, 2.0, "inf", 4.0, "-inf", 6.0]).assign(temp=["1", "inf", "3", "4", "5", "6"])
    series, report = regularise(frame, "date", "value", None, None, "interpolate", "f.csv", ["temp"])
    assert np.isfinite(series[0].values).all() and np.isfinite(series[0].covariates).all()
    assert series[0].values[2] == 3.0 and not series[0].observed[2] and not series[0].observed[4]
    assert report["infinite_targets"] == 2 and report["missing_or_non_numeric_targets"] == 2


def test_times_across_a_daylight_saving_change_are_put_in_utc_where_the_hours_stay_regular():
    local = pd.date_range("2024-03-30 20:00", periods=12, freq="h", tz="Europe/Berlin")
    frame = pd.DataFrame({"time": local.map(lambda t: t.isoformat()), "value": [str(v) for v in range(12)]})
    assert frame["time"].str[-6:].nunique() == 2  # +01:00, then +02:00
    series, report = regularise(frame, "time", "value", None, None, "interpolate", "f.csv")
    assert len(series[0].values) == 12 and report["gaps_filled"] == 0
    assert report["series"]["(single)"]["frequency"] == "h"


def test_daily_times_at_local_midnight_across_a_daylight_saving_change_keep_their_local_dates():
    local = pd.date_range("2024-03-25", periods=14, freq="D", tz="Europe/Berlin")
    frame = pd.DataFrame({"date": local.map(lambda t: t.isoformat()), "value": [str(v) for v in range(14)]})
    assert frame["date"].str[-6:].nunique() == 2  # +01:00, then +02:00 from 31 March
    series, report = regularise(frame, "date", "value", None, None, "interpolate", "f.csv")
    assert report["series"]["(single)"]["frequency"] == "D" and report["gaps_filled"] == 0
    assert list(series[0].times.date) == list(local.date) and list(series[0].values) == list(range(14))


def test_a_column_mixing_times_with_and_without_a_utc_offset_is_refused_naming_the_first_of_each():
    times = ["2021-03-20T00:00:00", "2021-03-20T00:30:00+01:00", "2021-03-20T01:00:00", "2021-03-20T01:30:00+01:00"]
    frame = pd.DataFrame({"time": times, "value": ["1", "2", "3", "4"]}).set_index(pd.RangeIndex(2, 6))
    with pytest.raises(DataError, match=r"f.csv: column 'time' mixes .*line 2: '2021-03-20T00:00:00'.*line 3: "):
        regularise(frame, "time", "value", None, None, "interpolate", "f.csv")


def test_validate_warns_of_averaged_duplicate_timestamps_with_the_first_one(tmp_path):
    import modelyard

    config = write_config(tmp_path, sine())
    frame = daily(sine())
    pd.concat([frame, frame.iloc[[30, 50]]]).to_csv(tmp_path / "base.csv", index=False)
    warnings = modelyard.validate(config).warnings
    assert any("2 rows repeat a timestamp" in w and "(single) at 2024-01-31" in w for w in warnings)


def test_the_gap_warning_names_the_series_of_each_example_when_the_file_holds_several(tmp_path):
    import modelyard

    config = write_config(tmp_path, sine(), data={"id_column": "shop"})
    shops = [daily(sine(), drop=drop).assign(shop=shop) for shop, drop in (("a", (30,)), ("b", (30, 40)))]
    pd.concat(shops).to_csv(tmp_path / "base.csv", index=False)
    warnings = modelyard.validate(config).warnings
    assert any(
        "3 missing values/timestamps" in w
        and "series a at 2024-01-31, series b at 2024-01-31, series b at 2024-02-10" in w
        for w in warnings
    )


@pytest.mark.parametrize("frequency", ["h", "ns"])
def test_a_frequency_finer_than_the_data_is_refused_with_the_numbers_before_the_grid_is_built(frequency):
    with pytest.raises(DataError, match=rf"frequency '{frequency}' puts its 30 timestamps on a grid of \d+ points"):
        regularise(daily(list(range(30))), "date", "value", None, frequency, "interpolate", "f.csv")


def test_an_unknown_frequency_alias_is_refused_by_validate_naming_data_frequency(tmp_path):
    import modelyard
    from modelyard.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.frequency 'XYZ' is not a pandas offset alias"):
        modelyard.validate(write_config(tmp_path, sine(), data={"frequency": "XYZ"}))


def test_a_log_transform_of_a_series_with_values_at_or_below_zero_is_refused_by_validate(tmp_path):
    import modelyard
    from modelyard.errors import ConfigError

    values = sine(level=0.5)
    with pytest.raises(ConfigError, match=r"model.transform: log needs positive values.*values <= 0"):
        modelyard.validate(write_config(tmp_path, values, model={"transform": "log"}))


def test_an_early_stopping_metric_forecasting_does_not_report_is_refused_by_validate(tmp_path):
    import modelyard
    from modelyard.errors import ConfigError

    path = write_config(tmp_path, sine(), train={"early_stopping": {"metric": "foo", "patience": 2}})
    with pytest.raises(ConfigError, match=r"early_stopping.metric.*'foo'") as err:
        modelyard.validate(path)
    assert "mae, rmse, mape, mase" in err.value.hint


def test_series_of_different_frequencies_in_one_file_are_refused_by_validate_naming_both(tmp_path):
    import modelyard

    config = write_config(tmp_path, sine(), data={"id_column": "shop"})
    months = daily(sine(60)).assign(date=pd.date_range("2020-01-01", periods=60, freq="MS").strftime("%Y-%m-%d"))
    days = daily(sine(200))
    pd.concat([months.assign(shop="a"), days.assign(shop="b")]).to_csv(tmp_path / "base.csv", index=False)
    with pytest.raises(DataError, match="series a is 'MS' but series b is 'D'"):
        modelyard.validate(config)


def test_a_series_too_short_for_the_given_context_names_context_plus_horizon(tmp_path):
    import modelyard

    with pytest.raises(DataError, match=r"training part of 21 \(context_length \+ horizon\)"):
        modelyard.validate(write_config(tmp_path, sine(20)))


def small_learner(values: np.ndarray, transform: str = "auto", covariates: list[str] | None = None):
    from modelyard.learners.forecast import ForecastLearner
    from modelyard.tasks.forecasting import ForecastModelConfig

    series = make_series(values)
    if covariates:
        series.covariates = np.ones((len(values), len(covariates)))
    splits = chronological_splits([series], 0.1, 0.1, horizon=3, min_train=10)
    options = ForecastModelConfig(context_length=5, horizon=3, hidden_size=4, layers=1)
    return ForecastLearner.build(options, splits["train"], transform, covariates)


def test_a_log_scale_model_refuses_a_history_at_or_below_zero_naming_the_value():
    learner = small_learner(np.linspace(1, 10, 60), transform="log")
    with pytest.raises(DataError, match=r"request 2: history\[3\] is -1: this model works in log scale"):
        learner.predict([{"history": [1.0] * 5}, {"history": [1.0, 2.0, 3.0, -1.0, 2.0]}])


def test_covariates_sent_to_a_model_without_covariates_are_refused():
    learner = small_learner(np.linspace(1, 10, 60))
    for rows in ([[0.0]] * 5, [[0.0, 1.0]] * 5):
        with pytest.raises(DataError, match="this model reads no covariates"):
            learner.predict([{"history": [1.0] * 5, "covariates": rows}])


def test_the_warm_up_example_carries_covariates_when_the_model_reads_them():
    from modelyard.tasks.forecasting import ForecastingTask

    for names in ([], ["temp", "promo"]):
        learner = small_learner(np.linspace(1, 10, 60), covariates=names)
        example = ForecastingTask().example_input(learner)
        assert ("covariates" in example) == bool(names)
        assert len(learner.predict([example])[0]["forecast"]) == 1


def test_an_id_sent_as_a_number_names_the_same_series_as_its_text():
    from modelyard.learners.forecast import ForecastInput
    from modelyard.tasks.forecasting import ForecastingTask

    frame = pd.DataFrame([{"history": "[1, 2, 3]", "id": 2}, {"history": "[1, 2, 3]"}]).set_index(pd.RangeIndex(1, 3))
    assert frame["id"].dtype == float  # the row without an id makes pandas read 2 as 2.0
    assert [r.id for r in ForecastingTask().inputs_from_frame(frame, None)] == ["2", None]
    assert ForecastInput(history=[1.0], id=2).id == ForecastInput(history=[1.0], id=" 2").id == "2"


@pytest.mark.parametrize("row", [{"history": "[1, 2]", "id": True}, {"history": "[1, 2]", "horizon": "soon"}])
def test_a_bad_forecast_request_in_a_file_is_named_in_one_line(row):
    from modelyard.tasks.forecasting import ForecastingTask

    with pytest.raises(DataError, match="line 1: not a forecast request") as err:
        ForecastingTask().inputs_from_frame(pd.DataFrame([row]).set_index(pd.RangeIndex(1, 2)), None)
    assert "\n" not in err.value.message and "pydantic" not in err.value.message


def test_a_forecast_that_overflows_is_refused_naming_the_request_instead_of_answered_as_null():
    learner = small_learner(np.linspace(1, 10, 60), transform="log")
    learner._forward = lambda x: np.full((len(x), learner.horizon), 100.0)  # a steep rise, in log scale
    with pytest.raises(DataError, match=r"request 2: the forecast overflows the range of numbers"):
        learner.predict([{"history": [1.0] * 5}, {"history": [1e307] * 5, "horizon": 30}])


def test_a_log_scale_forecast_of_a_history_in_other_units_is_the_same_forecast_in_those_units():
    learner = small_learner(np.linspace(100, 400, 60))  # auto picks log; the training minimum is 100
    history = np.linspace(300, 420, 5) + np.array([0, 15, -10, 20, -5])
    thousands, units, millions = (
        learner.predict([{"history": list(history * f), "horizon": 6}])[0]["forecast"] for f in (1e-3, 1.0, 1e3)
    )
    np.testing.assert_allclose(thousands, np.asarray(units) * 1e-3, rtol=1e-5)
    np.testing.assert_allclose(millions, np.asarray(units) * 1e3, rtol=1e-5)


def test_evaluating_a_file_too_short_for_the_models_window_names_the_file_and_the_points_it_needs(tmp_path):
    from modelyard.tasks import load_config
    from modelyard.tasks.forecasting import ForecastingTask

    config = load_config(write_config(tmp_path, sine(), model={"context_length": None}))
    learner = small_learner(np.linspace(1, 10, 60))  # context_length 5, horizon 3
    for points, windows in ((7, 0), (9, 2)):
        daily(sine(points)).to_csv(tmp_path / f"{points}.csv", index=False)
        split, _ = ForecastingTask().evaluation_rows(config, str(tmp_path / f"{points}.csv"), [])
        if windows:
            assert learner.evaluate(split)["windows"] == windows
            continue
        with pytest.raises(DataError, match=r"7.csv: series \(single\) has 7 points: too few to score") as err:
            learner.evaluate(split)
        assert "needs 8 per series (context_length 5 + horizon 3)" in err.value.message
        assert "split" not in err.value.message + (err.value.hint or "")


def test_training_series_are_keyed_as_requests_name_them_and_rows_without_an_id_are_named():
    frame = pd.concat([daily([1, 2, 3, 4]).assign(id=2.0), daily([5, 6, 7, 8]).assign(id=10.0)], ignore_index=True)
    frame.loc[len(frame)] = {"date": "2024-01-09", "value": "9", "id": None}  # pandas reads the ids as floats
    frame.index = pd.RangeIndex(2, 2 + len(frame))
    series, report = regularise(frame, "date", "value", "id", None, "interpolate", "f.csv")
    assert sorted(s.key for s in series) == ["10", "2"]  # as a request's id 2 or "2" names them, not "2.0"
    assert report["missing_ids"] == 1 and report["missing_ids_examples"] == ["line 10"]


def test_a_file_scored_whole_fills_its_gaps_from_earlier_values_only():
    """evaluate --data scores every point: a gap filled from a later value would show a forecast what it forecasts."""
    from modelyard.data.timeseries import _fill

    values = pd.Series([np.nan, 1.0, np.nan, 3.0], index=pd.date_range("2024-01-01", periods=4, freq="D"))
    assert _fill(values, "interpolate", 4).tolist() == [1.0, 1.0, 2.0, 3.0]  # all of it training data
    assert _fill(values, "interpolate", 0).tolist() == [1.0, 1.0, 1.0, 3.0]
