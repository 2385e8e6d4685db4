"""Time series from tables: parse, regularise to one frequency, report and fill gaps, split by time, seasons.

Splits are chronological only: each series' last part is the test set and the part before it validation. A
split keeps the series' whole past (context for forecasting is known at forecast time) but scores only its own
points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelyard.data.interactions import id_strings
from modelyard.errors import DataError

FillRule = Literal["interpolate", "ffill", "zero"]
FILL_RULES: dict[str, str] = {
    "interpolate": "linear interpolation in time between the neighbouring observed values of the training part; "
    "after it, the last observed value carried forward",
    "ffill": "the last observed value carried forward",
    "zero": "zero",
}


@dataclass
class Series:
    """One regular series: a value per timestamp, which values were observed rather than filled, covariates."""

    key: str
    times: pd.DatetimeIndex
    values: np.ndarray  # (T,) float64
    observed: np.ndarray  # (T,) bool
    covariates: np.ndarray | None = None  # (T, K) float64, gaps filled like the target

    def head(self, n: int) -> Series:
        covariates = None if self.covariates is None else self.covariates[:n]
        return Series(self.key, self.times[:n], self.values[:n], self.observed[:n], covariates)


@dataclass
class SeriesSplit:
    """One split of each series: `series[i]` ends where the split ends; points from `starts[i]` are scored.
    `source` names the file of a split that is a whole file (`evaluate --data`), for errors to point at."""

    series: list[Series]
    starts: list[int]
    season: int = 1
    train_ends: list[int] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return sum(len(s.values) - start for s, start in zip(self.series, self.starts, strict=True))


def infer_frequency(times: pd.DatetimeIndex) -> str:
    """A pandas offset alias; month/quarter/year-start data are recognised even with some months missing."""
    if len(times) < 3:
        raise DataError(f"a series needs at least 3 timestamps to infer its frequency; found {len(times)}")
    freq = pd.infer_freq(times)
    if freq is not None:
        return freq
    if (times.day == 1).all() and (times.hour == 0).all():
        months = np.diff(times.year * 12 + times.month)
        step = int(pd.Series(months).mode().iloc[0])
        if step >= 1 and (months % step == 0).all():
            return f"{step}MS"
    step = pd.Series(times[1:] - times[:-1]).mode().iloc[0]
    if step % pd.Timedelta(days=1) == pd.Timedelta(0):
        return f"{step.days}D"
    return pd.tseries.frequencies.to_offset(step).freqstr


def parse_times(column: pd.Series, source: str) -> pd.Series:
    """Times, NaT where a cell is not a date. A column mixing UTC offsets (a DST change) is put in UTC, where hourly
    steps stay regular; unless every time is at one hour of the local day (daily data stamped at local midnight),
    where the local calendar is the regular one and UTC would shift half the days by an hour. A column mixing times
    with and without an offset is refused: a time without one could be local or UTC."""
    try:
        return pd.to_datetime(column, errors="coerce", format="mixed")
    except ValueError:  # "Mixed timezones detected"
        utc = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
    cells = [pd.to_datetime(value, errors="coerce") for value in column]
    _refuse_naive_with_offsets(column, cells, source)
    local = pd.Series([_wall_clock(time) for time in cells], index=column.index, dtype="datetime64[ns]")
    if local.dropna().dt.time.nunique() == 1 and utc.dropna().dt.time.nunique() > 1:
        return local
    return utc


def _refuse_naive_with_offsets(column: pd.Series, cells: list[Any], source: str) -> None:
    """Naming the first time without a UTC offset and the first with one, when the column has both."""
    naive = next((i for i, time in enumerate(cells) if time is not pd.NaT and time.tzinfo is None), None)
    aware = next((i for i, time in enumerate(cells) if time is not pd.NaT and time.tzinfo is not None), None)
    if naive is not None and aware is not None:
        raise DataError(
            f"{source}: column '{column.name}' mixes times without a UTC offset (line {column.index[naive]}: "
            f"{column.iloc[naive]!r}) and times with one (line {column.index[aware]}: {column.iloc[aware]!r})",
            "write every time with its offset (2024-03-31T02:00:00+02:00), or none of them",
        )


def _wall_clock(time: Any) -> pd.Timestamp:
    """One parsed cell's local date and time, its UTC offset dropped (NaT where it is not a date)."""
    return time.tz_localize(None) if time is not pd.NaT and time.tzinfo is not None else time


def finite_numbers(column: pd.Series) -> pd.Series:
    """Numbers, NaN where a cell is not a finite number: an infinite value is missing like a non-numeric one."""
    numbers = pd.to_numeric(column, errors="coerce").astype(np.float64)
    return numbers.where(np.isfinite(numbers))


def _grid(key: str, times: pd.DatetimeIndex, freq: str, source: str) -> pd.DatetimeIndex:
    """The regular grid from the first to the last timestamp; one that would be mostly filled (a frequency finer
    than the data's spacing) is refused before it is built, with the numbers."""
    offset = pd.tseries.frequencies.to_offset(freq)
    span = times[-1] - times[0]
    if isinstance(offset, pd.offsets.Tick):
        points = span // pd.Timedelta(offset) + 1
    else:  # calendar offsets (months, weeks, business days) are at least a day long
        points = len(pd.date_range(times[0], times[-1], freq=offset))
    if points > 2 * len(times):
        raise DataError(
            f"{source}: series {key or '(single)'}: frequency '{freq}' puts its {len(times)} timestamps on a "
            f"grid of {points} points, so {points - len(times)} ({1 - len(times) / points:.0%}) would be filled",
            "set data.frequency to the spacing of the data (or null to infer it)",
        )
    return pd.date_range(times[0], times[-1], freq=offset)


def _fill(values: pd.Series, rule: FillRule, train_end: int) -> pd.Series:
    """Gaps filled from the training part's values and, after it, from earlier values only: a filled point is a
    model input and an anchor, so filling it from a later value would show a forecast the value it forecasts."""
    if rule == "zero":
        return values.fillna(0.0)
    train = values.iloc[:train_end]
    train = train.interpolate(method="time", limit_direction="both") if rule == "interpolate" else train.ffill()
    filled = pd.concat([train.bfill(), values.iloc[train_end:]]).ffill()
    return filled if train_end else filled.bfill()  # a file scored whole: only a leading gap takes its first value


def _text(time: pd.Timestamp) -> str:
    return str(time.date()) if time == time.normalize() else str(time)


def _within(train_end: int, grid: pd.DatetimeIndex) -> str:
    """Where a series needs a numeric value for its gaps to be filled: its training part, when it has later ones."""
    return f" in its training part (up to {grid[train_end - 1]})" if train_end < len(grid) else ""


def regularise(
    frame: pd.DataFrame,
    time_col: str,
    target_col: str,
    id_col: str | None,
    frequency: str | None,
    fill: FillRule,
    source: str,
    covariates: Sequence[str] = (),
    train_end: Callable[[int], int] = lambda points: points,
) -> tuple[list[Series], dict[str, Any]]:
    """Parse times and targets, average duplicate timestamps, put each series on a regular grid, fill gaps.

    `train_end(points)` is where a series of that many points stops being training data (default: nowhere): gaps
    after it are filled from earlier values only."""
    times = parse_times(frame[time_col], source)
    bad_time = times.isna()
    if bad_time.all():
        raise DataError(
            f"{source}: no value of column '{time_col}' (data.time_column) parses as a date/time",
            f"first value: {frame[time_col].iloc[0]!r}; use ISO dates such as 2024-01-31",
        )
    target = finite_numbers(frame[target_col])
    infinite = int(np.isinf(pd.to_numeric(frame[target_col], errors="coerce")).sum())
    report: dict[str, Any] = {
        "rows": len(frame),
        "unparseable_times": int(bad_time.sum()),
        "unparseable_times_examples": [f"line {i}" for i in frame.index[bad_time][:5]],
        "missing_or_non_numeric_targets": int(target.isna().sum() - (bad_time & target.isna()).sum()),
        "infinite_targets": infinite,
        "fill_rule": f"{fill}: {FILL_RULES[fill]}",
        "series": {},
    }
    # ids as requests name them (2, 2.0 and "2" alike: an empty id cell makes pandas read the column as floats)
    keys = id_strings(frame[id_col]) if id_col else pd.Series("", index=frame.index)
    no_id = keys.isna() & ~bad_time
    report["missing_ids"] = int(no_id.sum())
    report["missing_ids_examples"] = [f"line {i}" for i in frame.index[no_id][:5]]
    table = pd.DataFrame({"key": keys, "time": times, "value": target})
    for name in covariates:
        table[f"cov:{name}"] = finite_numbers(frame[name])
    cov_cols = [f"cov:{name}" for name in covariates]
    table = table[~bad_time & ~no_id]
    out: list[Series] = []
    for key, group in table.groupby("key", sort=True):
        repeated = group["time"][group["time"].duplicated()]
        means = group.groupby("time")[["value", *cov_cols]].mean().sort_index()
        values = means["value"]
        freq = frequency or infer_frequency(values.index)
        grid = _grid(str(key), values.index, freq, source)
        if not values.index.isin(grid).all():
            off = values.index[~values.index.isin(grid)][:3]
            raise DataError(
                f"{source}: series {key or '(single)'}: timestamps {list(map(str, off))} are not on "
                f"the frequency '{freq}' grid",
                "set data.frequency to the series' pandas offset alias",
            )
        regular = values.reindex(grid)
        end = int(np.clip(train_end(len(grid)), 1, len(grid)))  # a series too short to split is refused later
        extra = means[cov_cols].reindex(grid).apply(_fill, args=(fill, end))
        if extra.isna().any().any():
            empty = next(c for c in cov_cols if extra[c].isna().any())[4:]
            raise DataError(
                f"{source}: series {key or '(single)'}: covariate '{empty}' has no numeric value{_within(end, grid)}"
            )
        missing_times = grid[~grid.isin(values.index)]
        observed = regular.notna().to_numpy()
        filled = _fill(regular, fill, end)
        if filled.isna().any():
            raise DataError(
                f"{source}: series {key or '(single)'} has no numeric value in '{target_col}'{_within(end, grid)}"
            )
        report["series"][key or "(single)"] = {
            "points": len(grid),
            "frequency": freq,
            "start": str(grid[0]),
            "end": str(grid[-1]),
            "duplicate_timestamps_averaged": len(repeated),
            "duplicate_timestamps_examples": [_text(t) for t in repeated.sort_values().unique()[:3]],
            "missing_timestamps": len(missing_times),
            "missing_timestamps_examples": [_text(t) for t in missing_times[:10]],
            "filled_values": int((~observed).sum()),
        }
        cov = extra.to_numpy(dtype=np.float64) if cov_cols else None
        out.append(Series(str(key), grid, filled.to_numpy(dtype=np.float64), observed, cov))
    report["gaps_filled"] = sum(s["filled_values"] for s in report["series"].values())
    return out, report


def split_points(n: int, validation: float, test: float, min_part: int) -> tuple[int, int]:
    """Where validation and test begin; each part holds at least `min_part` points (one full horizon)."""
    n_test = max(min_part, round(n * test)) if test > 0 else 0
    n_val = max(min_part, round(n * validation)) if validation > 0 else 0
    return n - n_test - n_val, n - n_test


def chronological_splits(
    series: list[Series],
    validation: float,
    test: float,
    horizon: int,
    min_train: int,
    season: int = 1,
    why: str = "context_length + horizon",
) -> dict[str, SeriesSplit]:
    """Train, validation and test by time per series, never shuffled; no split sees a later split's values.
    `why` says in the error where `min_train` comes from."""
    splits = {name: SeriesSplit([], [], season) for name in ("train", "validation", "test")}
    for s in series:
        val_start, test_start = split_points(len(s.values), validation, test, horizon)
        if val_start < min_train:
            raise DataError(
                f"series {s.key or '(single)'} has {len(s.values)} points: too few for a training part of "
                f"{min_train} ({why}) plus validation and test parts of {horizon} or more",
                "lower model.context_length / model.horizon or data.split fractions, or add data",
            )
        for name, start, end in (
            ("train", 0, val_start),
            ("validation", val_start, test_start),
            ("test", test_start, len(s.values)),
        ):
            if end > start:
                splits[name].series.append(s.head(end))
                splits[name].starts.append(start)
                splits[name].train_ends.append(val_start)
    return splits


def autocorrelation(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation for lags 0..max_lag (FFT, biased estimator as in statsmodels' acf)."""
    x = values - values.mean()
    n = len(x)
    spectrum = np.fft.rfft(x, n=2 ** int(np.ceil(np.log2(2 * n))))
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    return acov / acov[0] if acov[0] > 0 else np.zeros(max_lag + 1)


def _best_peak(acf: np.ndarray, prominence: float) -> int:
    lowest = np.minimum.accumulate(acf)
    peaks = [
        lag
        for lag in range(2, len(acf) - 1)
        if acf[lag - 1] < acf[lag] >= acf[lag + 1] and acf[lag] - lowest[lag] >= prominence and acf[lag] > 0
    ]
    if not peaks:
        return 1
    best = max(peaks, key=lambda lag: acf[lag])
    # a multiple of the true period can win by noise: prefer a strong peak that divides it
    divisors = [
        lag
        for lag in peaks
        if lag < best
        and acf[lag] >= 0.9 * acf[best]
        and best / lag >= 1.9
        and abs(best / lag - round(best / lag)) < 0.05
    ]
    return min(divisors) if divisors else best


def detect_season(values: np.ndarray, max_lag: int | None = None, prominence: float = 0.3) -> int:
    """The lag of the highest autocorrelation peak that rises `prominence` above every lower lag's; 1 if none.

    A linear trend is removed first so that trending series (airline passengers) show their yearly cycle. Long
    cycles (365 days) have flat, noisy peaks, so the search is repeated on an autocorrelation smoothed in
    proportion to the first answer.
    """
    n = len(values)
    max_lag = min(max_lag or n // 2, n // 2)
    if max_lag < 4:
        return 1
    t = np.arange(n)
    acf = autocorrelation(values - np.polyval(np.polyfit(t, values, 1), t), max_lag)
    season = _best_peak(acf, prominence)
    width = 2 * (season // 32) + 1
    if width > 1:
        smooth = np.convolve(np.pad(acf, width // 2, mode="edge"), np.ones(width) / width, mode="valid")
        season = _best_peak(smooth, prominence)
    return season


def window_origins(split: SeriesSplit, context: int, horizon: int) -> list[tuple[int, int]]:
    """(series, origin) of every forecast whose `horizon` targets lie in the split and whose context exists.

    The forecast at origin t reads values [t - context, t) and predicts [t, t + horizon).
    """
    return [
        (i, t)
        for i, (s, start) in enumerate(zip(split.series, split.starts, strict=True))
        for t in range(max(start, context), len(s.values) - horizon + 1)
    ]
