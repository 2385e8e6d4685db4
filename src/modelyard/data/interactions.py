"""User-item interactions: implicit feedback from ratings, and the leave-last-out split per user.

A user's last positive interaction (by time; seeded random order when there is no time column) is the test
target, the one before it the validation target, and everything else is training data. Each split carries the
interactions known before it (`history`), which rankings exclude: an item a user already has is never
recommended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.categories import id_text
from modelyard.errors import DataError

COLUMNS = ["user", "item", "positive", "time"]


@dataclass
class Interactions:
    """One split: `targets` are positive (user, item) pairs to learn or find; `history` what came before."""

    targets: pd.DataFrame  # columns user, item (string ids)
    history: pd.DataFrame | None  # columns user, item: interactions known before; None: what the model knows

    def __len__(self) -> int:
        return len(self.targets)


def id_strings(column: pd.Series) -> pd.Series:
    """A column of ids as `id_text` makes them (<NA> where absent), vectorised for the common dtypes."""
    if pd.api.types.is_float_dtype(column):
        present = column.dropna()
        if (np.isfinite(present) & (present == np.round(present)) & (present.abs() < 2**53)).all():
            column = column.astype("Int64")
    elif column.dtype == object:
        column = column.map(id_text)
    text = column.astype("string").str.strip()
    return text.mask(text.eq(""))


def _times(column: pd.Series, source: str, name: str) -> pd.Series:
    """Unix seconds as numbers, or anything pandas parses as a date, as float seconds."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().mean() > 0.99:
        return numeric.astype(float)
    parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
    if parsed.notna().mean() < 0.99:
        bad = column[parsed.isna()].iloc[0]
        raise DataError(
            f"{source}: column '{name}' (data.time_column) has values that are not times, e.g. {bad!r}",
            "use unix seconds or ISO dates, or set data.time_column: null for a random split",
        )
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _odd_ratings(rating: pd.Series) -> pd.Series:
    """Ratings far outside the scale most of them use (a 99 or a -3 among 1-5 stars): kept, but worth a warning.
    The 10th-90th percentiles (taken as values present, so one outlier cannot stretch them) give the scale."""
    if rating.isna().all():
        return rating.iloc[0:0]
    low, high = rating.quantile(0.1, interpolation="higher"), rating.quantile(0.9, interpolation="lower")
    span = max(high - low, abs(high), 1.0)
    return rating[(rating < low - span) | (rating > high + span) | ((rating < 0) & (low >= 0))]


def implicit_feedback(
    frame: pd.DataFrame,
    user_col: str,
    item_col: str,
    rating_col: str | None,
    time_col: str | None,
    threshold: float | None,
    source: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Normalise to (user, item, positive, time); a rating counts as positive at or above `threshold`."""
    out = pd.DataFrame(
        {
            "user": id_strings(frame[user_col]),
            "item": id_strings(frame[item_col]),
        },
        index=frame.index,
    )
    missing = out["user"].isna() | out["item"].isna()
    rating = pd.Series(np.nan, index=frame.index)
    if rating_col:
        rating = pd.to_numeric(frame[rating_col], errors="coerce").astype(np.float64)
        rating = rating.where(np.isfinite(rating))  # an infinite rating is no rating
        missing |= rating.isna()
        out["positive"] = rating >= threshold if threshold is not None else True
    else:
        out["positive"] = True
    out["time"] = _times(frame[time_col], source, time_col) if time_col else 0.0
    missing |= out["time"].isna()
    report: dict[str, Any] = {
        "rows": len(frame),
        "dropped_incomplete": int(missing.sum()),
        "dropped_examples": [f"line {i}" for i in frame.index[missing][:5]],
    }
    odd = _odd_ratings(rating[~missing])
    report["odd_ratings"] = len(odd)
    report["odd_rating_examples"] = [f"line {i}: {v:g}" for i, v in odd.head(5).items()]
    out = out[~missing].sort_values("time", kind="stable")
    dup = out.duplicated(["user", "item"], keep="last")
    out = out[~dup].reset_index(drop=True)
    report.update(
        {
            "duplicates_kept_latest": int(dup.sum()),
            "interactions": len(out),
            "positives": int(out["positive"].sum()),
            "users": int(out["user"].nunique()),
            "items": int(out["item"].nunique()),
            "rule": (
                f"positive when {rating_col} >= {threshold}"
                if rating_col and threshold is not None
                else "every interaction is positive"
            ),
        }
    )
    if report["positives"] == 0:
        raise DataError(
            f"{source}: no positive interactions ({report['rule']})",
            "lower data.rating_threshold or check data.rating_column",
        )
    return out[COLUMNS], report


def without_positive(frame: pd.DataFrame) -> dict[str, Any]:
    """Users whose every interaction is below the threshold: never evaluated nor trained on, so counted apart
    (the split's user counts then add up to the data's)."""
    users = frame["user"].unique()
    missing = sorted(set(users) - set(frame.loc[frame["positive"], "user"].unique()))
    return {"no_positive_users": len(missing), "no_positive_examples": missing[:5]}


def all_targets(frame: pd.DataFrame) -> tuple[dict[str, Interactions], dict[str, Any]]:
    """Every positive is a target (scoring a trained model on a new file: `split` fractions of zero)."""
    empty = frame.iloc[0:0][["user", "item"]]
    positives = frame[frame["positive"]][["user", "item"]]
    splits = {
        "train": Interactions(positives, None),
        "validation": Interactions(empty, empty),
        "test": Interactions(empty, empty),
    }
    return splits, {
        "rule": "every positive interaction is a target (no hold-out)",
        "evaluated_users": int(positives["user"].nunique()),
        "train_only_users": 0,
        **without_positive(frame),
        "targets": {"train": len(positives)},
    }


def leave_last_out(frame: pd.DataFrame, seed: int, timed: bool) -> tuple[dict[str, Interactions], dict[str, Any]]:
    """Per user (with >= 3 positives): last positive -> test, the one before -> validation; rest -> train."""
    rng = np.random.default_rng(seed)
    order = frame.assign(_tie=rng.random(len(frame)))
    order = order.sort_values(["time", "_tie"] if timed else ["_tie"], kind="stable")
    positives = order[order["positive"]]
    rank = positives.groupby("user").cumcount(ascending=False)  # 0 = the user's last positive
    eligible = positives.groupby("user")["item"].transform("size") >= 3
    test = positives[eligible & rank.eq(0)]
    validation = positives[eligible & rank.eq(1)]
    held = frame.index.isin(test.index) | frame.index.isin(validation.index)
    train_all = frame[~held]
    pairs = ["user", "item"]
    splits = {
        "train": Interactions(train_all[train_all["positive"]][pairs], train_all[pairs]),
        "validation": Interactions(validation[pairs], train_all[pairs]),
        "test": Interactions(test[pairs], pd.concat([train_all[pairs], validation[pairs]])),
    }
    report = {
        "rule": "leave-last-out per user " + ("by time" if timed else f"(random order, seed {seed})"),
        "evaluated_users": len(test),
        "train_only_users": int(positives["user"].nunique() - len(test)),
        **without_positive(frame),
        "targets": {name: len(s.targets) for name, s in splits.items()},
    }
    return splits, report
