"""Forecasting: predict the next steps of one or more time series (demand, traffic, sensors) with an LSTM.

Splits are chronological (the last part of each series is the test set, never shuffled); gaps are reported and
filled by the stated rule; naive and seasonal-naive forecasts are always scored beside the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.data.readers import read_table, require_columns
from modelyard.data.splits import fingerprint
from modelyard.data.timeseries import (
    Series,
    SeriesSplit,
    chronological_splits,
    detect_season,
    regularise,
    split_points,
    window_origins,
)
from modelyard.errors import BundleError, ConfigError, DataError
from modelyard.learners.forecast import ForecastInput, ForecastLearner, OnnxForecastLearner, score
from modelyard.metrics.forecast import naive_forecast, seasonal_naive_forecast
from modelyard.protocols import PreparedData, validate_input
from modelyard.tasks import register_task

METRICS = ("mae", "rmse", "mape", "mase")  # what validation reports, so what early stopping can watch

STARTER = """\
# modelyard config: forecasting (demand, traffic, sensor values)
name: my-forecaster
task: forecasting
data:
  train: data/series.csv            # .csv .tsv .jsonl .parquet; relative paths start at this file's folder
  time_column: date
  target_column: value
  id_column: null                   # set it when the file holds several series (one per id)
  covariate_columns: []             # numeric columns the model also reads (their past values, like the target)
  frequency: null                   # pandas offset alias (D, h, MS, W-SUN); null = inferred
  fill: interpolate                 # gaps: interpolate (in time; after the training part, ffill) | ffill | zero
  split: {validation: 0.1, test: 0.1}   # chronological: the last 10% of each series is the test set
model:
  backbone: lstm
  context_length: null              # past steps the model reads; null = two seasons, 24 to 96 steps
  horizon: 12                       # steps predicted at once (longer requests are answered recursively)
  hidden_size: 64
  layers: 2
  dropout: 0.1
  season_length: auto               # auto = detected by autocorrelation on the training part, or an integer
  transform: auto                   # auto = log scale for positive series spanning more than a factor of two
train:
  epochs: null                      # null = the model's tuned default (printed when training starts)
  early_stopping: {patience: 5, metric: mae}
"""


class ForecastDataConfig(DataConfig):
    time_column: str = "date"
    target_column: str = "value"
    id_column: str | None = Field(None, description="column naming the series when the file holds several")
    covariate_columns: list[str] = Field(
        default_factory=list, description="numeric columns the model also reads (past values only)"
    )
    frequency: str | None = Field(None, description="pandas offset alias (D, h, MS, W-SUN); null = inferred")
    fill: Literal["interpolate", "ffill", "zero"] = Field(
        "interpolate",
        description="how missing timestamps and values are filled (they are never scored); interpolate reads only "
        "the training part's values, and later gaps carry the last value forward, so no forecast input is "
        "filled from a later value",
    )

    @field_validator("frequency")
    @classmethod
    def _offset_alias(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                pd.tseries.frequencies.to_offset(value)
        except ValueError:
            raise ValueError(
                f"data.frequency {value!r} is not a pandas offset alias; use e.g. D, h, 15min, W-SUN, MS"
            ) from None
        return value


class ForecastModelConfig(ModelConfig):
    backbone: Literal["lstm"] = "lstm"
    context_length: int | None = Field(
        None, ge=2, le=2048, description="null = two seasons, 24 to 96 steps, less for short series"
    )
    horizon: int = Field(12, ge=1, le=512)
    hidden_size: int = Field(64, ge=4, le=2048)
    layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.1, ge=0, lt=1)
    season_length: Literal["auto"] | int = Field("auto", description="auto (autocorrelation) or a period >= 1")
    transform: Literal["auto", "log", "none"] = "auto"


def _frame(path: str, config: Config, max_rows: int | None) -> pd.DataFrame:
    data: ForecastDataConfig = config.data
    frame, read = read_table(path, data.format, max_rows)
    columns = {"time_column": data.time_column, "target_column": data.target_column}
    if data.id_column:
        columns["id_column"] = data.id_column
    columns |= {f"covariate_columns[{i}]": name for i, name in enumerate(data.covariate_columns)}
    require_columns(frame, columns, path)
    if read.skipped:
        frame.attrs["skipped"] = f"{path}: {read.skipped} malformed rows skipped (first: {read.problems[0]})"
    return frame


def _step(freq: str) -> Any:
    """A frequency's step: "MS" and "1MS", "D" and "24h", "W-SUN" and "W-MON" are each one step."""
    offset = pd.tseries.frequencies.to_offset(freq)
    try:
        return pd.Timedelta(offset)
    except ValueError:  # calendar offsets (months, weeks, business days) have no fixed length
        return type(offset).__name__, offset.n


def _one_frequency(report: dict[str, Any], source: str) -> None:
    """One model reads every series with one context, horizon and season counted in steps, so the steps must be
    the same length: hourly and daily series in one file would share a 'season' meaning different spans."""
    series = list(report["series"].items())
    first, info = series[0]
    for key, other in series[1:]:
        if _step(other["frequency"]) != _step(info["frequency"]):
            raise DataError(
                f"{source}: series {first} is '{info['frequency']}' but series {key} is '{other['frequency']}': "
                "one forecasting model reads all its series on one time step",
                "train one model per frequency: put the series of each frequency in a file of their own",
            )


def _season(config: Config, train: list[np.ndarray]) -> tuple[int, str]:
    given = config.model.season_length
    if given != "auto":
        if given < 1:
            raise ConfigError(f"model.season_length must be 'auto' or an integer >= 1, not {given}")
        return given, "given in model.season_length"
    longest = max(train, key=len)
    season = detect_season(longest)
    how = "autocorrelation peak of the training part" if season > 1 else "no clear autocorrelation peak"
    return season, f"detected: {how}"


def _check_log_scale(config: Config, series: list[Series]) -> None:
    """`transform: log` needs a strictly positive series: a log of zero or less is no number to learn from."""
    if config.model.transform != "log":
        return
    for s in series:
        low = s.values <= 0
        if low.any():
            first = int(np.argmax(low))
            raise ConfigError(
                f"model.transform: log needs positive values, but series {s.key or '(single)'} has "
                f"{int(low.sum())} values <= 0 (first {s.values[first]:g} at {s.times[first]})",
                "set model.transform: none (or auto, which picks log only for positive series)",
            )


def _context(config: Config, season: int, shortest_train: int) -> int:
    """Two seasons (24 to 96 steps), but at most half of what the shortest training part leaves for windows."""
    if config.model.context_length:
        return config.model.context_length
    room = max(4, (shortest_train - config.model.horizon) // 2)
    return int(min(np.clip(2 * season, 24, 96), room))


def _regular_series(
    frame: pd.DataFrame, config: Config, source: str, train_end: Callable[[int], int]
) -> tuple[list[Series], dict[str, Any]]:
    """The file's series on their regular grids, gaps filled from the training part (`train_end(points)` points)
    and after it from earlier values only; one time step for all series."""
    data: ForecastDataConfig = config.data
    series, report = regularise(
        frame, data.time_column, data.target_column, data.id_column, data.frequency, data.fill, source,
        data.covariate_columns, train_end,
    )  # fmt: skip
    _one_frequency(report, source)
    return series, report


def _gap_examples(report: dict[str, Any]) -> list[str]:
    """The first three missing timestamps, each with its series where the file holds several (they share dates)."""
    several = len(report["series"]) > 1
    return [
        f"series {key} at {time}" if several else time
        for key, info in report["series"].items()
        for time in info["missing_timestamps_examples"]
    ][:3]


def _fingerprint(split: SeriesSplit) -> dict[str, Any]:
    rows = [
        (s.key, t, v)
        for s, start in zip(split.series, split.starts, strict=True)
        for t, v in zip(s.times[start:], s.values[start:], strict=True)
    ]
    return fingerprint(pd.DataFrame(rows, columns=["key", "time", "value"]), ["key", "time", "value"])


def baseline_metrics(split: SeriesSplit, context: int, horizon: int) -> dict[str, dict[str, Any]]:
    """Naive and seasonal-naive forecasts scored on exactly the windows the model is scored on."""
    origins = window_origins(split, context, horizon)
    history = [split.series[i].values[:t] for i, t in origins]
    naive = np.array([naive_forecast(h, horizon) for h in history]).reshape(len(origins), horizon)
    seasonal = np.array([seasonal_naive_forecast(h, horizon, split.season) for h in history])
    return {
        "naive": score(split, origins, horizon, naive),
        "seasonal_naive": score(split, origins, horizon, seasonal.reshape(len(origins), horizon)),
    }


def _json_cell(value: Any) -> Any:
    """A CSV cell holding JSON (a history list) as its value, a Parquet list (a numpy array in pandas) as a list;
    other text stays text, for validation to name."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@register_task("forecasting")
class ForecastingTask:
    DataConfig: ClassVar = ForecastDataConfig
    ModelConfig: ClassVar = ForecastModelConfig
    Input: ClassVar = ForecastInput
    main_metric: ClassVar = "mae"
    validation_metrics: ClassVar = METRICS
    greater_is_better: ClassVar = False

    def example_input(self, learner: ForecastLearner) -> dict[str, Any]:
        """The server's warm-up request, which depends on the model (its context and covariates)."""
        return learner.example_input()

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        data: ForecastDataConfig = config.data
        if data.validation or data.test:
            raise ConfigError(
                "forecasting splits each series by time: leave data.validation and data.test empty",
                "put the whole series in data.train and set data.split.{validation,test} fractions",
            )
        frame = _frame(data.train, config, data.max_rows)
        train_end = lambda points: split_points(points, data.split.validation, data.split.test, config.model.horizon)[0]  # noqa: E731
        series, report = _regular_series(frame, config, data.train, train_end)
        warnings = [frame.attrs["skipped"]] if "skipped" in frame.attrs else []
        horizon, given = config.model.horizon, config.model.context_length
        # the season (and so the default context) is measured on a first split; a given context is known already
        least, why = (given + horizon, "context_length + horizon") if given else (horizon + 2, "horizon + 2")
        first = chronological_splits(series, data.split.validation, data.split.test, horizon, least, why=why)
        _check_log_scale(config, series)
        season, how = _season(config, [s.values for s in first["train"].series])
        context = _context(config, season, min(len(s.values) for s in first["train"].series))
        splits = chronological_splits(
            series, data.split.validation, data.split.test, horizon, context + horizon, season
        )
        if report["gaps_filled"]:
            warnings.append(
                f"{report['gaps_filled']} missing values/timestamps filled by {report['fill_rule']} "
                f"(e.g. {', '.join(_gap_examples(report)) or 'non-numeric values'}); filled points are not scored"
            )
        if duplicates := [(k, s) for k, s in report["series"].items() if s["duplicate_timestamps_averaged"]]:
            key, first = duplicates[0]
            warnings.append(
                f"{sum(s['duplicate_timestamps_averaged'] for _, s in duplicates)} rows repeat a timestamp of their "
                f"series and were averaged with it (first: series {key} at {first['duplicate_timestamps_examples'][0]})"
            )
        if report["infinite_targets"]:
            warnings.append(
                f"{report['infinite_targets']} infinite values of '{data.target_column}' treated as missing "
                f"and filled by {data.fill}"
            )
        if report["missing_ids"]:
            warnings.append(
                f"{report['missing_ids']} rows dropped: no '{data.id_column}' names their series "
                f"({', '.join(report['missing_ids_examples'])})"
            )
        if report["unparseable_times"]:
            warnings.append(
                f"{report['unparseable_times']} rows dropped: '{data.time_column}' is not a date "
                f"({', '.join(report['unparseable_times_examples'])})"
            )
        report.update(
            {
                "season_length": season,
                "season_length_source": how,
                "context_length": context,
                "horizon": horizon,
                "splits": {
                    n: {"points": len(s), "windows": len(window_origins(s, context, horizon))}
                    for n, s in splits.items()
                },
                "split_rule": "chronological per series: the last points are the test set, never shuffled",
            }
        )
        prints = {n: _fingerprint(s) for n, s in splits.items()}
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[SeriesSplit, list[str]]:
        """`evaluate --data`: every series of the file scored whole, nothing split off (the learner refuses a
        series shorter than its context_length + horizon, naming the file); notes name skipped rows."""
        frame = _frame(path, config, None)
        series, _ = _regular_series(frame, config, path, lambda points: 0)  # every point may be scored
        _check_log_scale(config, series)
        season, _ = _season(config, [s.values for s in series])
        split = SeriesSplit(series, [0] * len(series), season, [len(s.values) for s in series], path)
        return split, [frame.attrs["skipped"]] if "skipped" in frame.attrs else []

    def build(self, config: Config, data: PreparedData) -> ForecastLearner:
        options = config.model.model_copy(update={"context_length": data.report["context_length"]})
        data.report["backbone"] = {
            "name": "lstm",
            "why": "the only forecasting backbone; baselines run beside it",
        }
        return ForecastLearner.build(
            options, data.splits["train"], config.model.transform, config.data.covariate_columns
        )

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        context, horizon = data.report["context_length"], data.report["horizon"]
        scored = {n: baseline_metrics(data.splits[n], context, horizon) for n in ("validation", "test")}
        return {
            name: {split: scored[split][name] for split in scored if scored[split][name]}
            for name in ("naive", "seasonal_naive")
        }

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[dict[str, Any]]:
        """`predict --input`: one request per row, a JSON Lines file of {"history": [...], "horizon": n}."""
        if "history" not in frame.columns:
            raise DataError(
                "a forecasting input file needs a 'history' column: one request per row",
                'write JSON Lines such as {"history": [112, 118, 132], "horizon": 12}',
            )
        fields = [c for c in ("history", "horizon", "id", "covariates") if c in frame.columns]
        requests = []
        for line, row in zip(frame.index, frame[fields].to_dict("records"), strict=True):
            request = {k: _json_cell(v) if k != "id" else v for k, v in row.items()}
            request = {k: v for k, v in request.items() if isinstance(v, list) or not pd.isna(v)}
            try:
                requests.append(validate_input(ForecastInput, request))
            except DataError as err:
                raise DataError(f"line {line}: not a forecast request: {err.message}") from None
        return requests

    def feedback_label(self, config: Config, label: Any) -> Any:
        """Feedback is a true label, scored right or wrong; a forecast has none, so it is refused where it
        arrives (`/v1/feedback`: 422, `feedback import`) rather than counted as wrong by `monitor` and the bandit."""
        raise DataError(
            "this model's answers are not labels (a forecast), so feedback cannot score them",
            "score forecasts against the values observed since with `modelyard evaluate` on a file of the series",
        )

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> ForecastLearner:
        path = directory / "forecaster.json"
        if not path.is_file():
            raise BundleError(f"{directory}: no forecaster.json; not a forecasting bundle")
        runtime = OnnxForecastLearner if manifest.get("runtime") == "onnxruntime" else ForecastLearner
        return runtime.load(directory, json.loads(path.read_text(encoding="utf-8")))
