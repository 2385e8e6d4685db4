"""`modelyard monitor`: traffic, latency, predicted labels, drift and live accuracy from the log."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from modelyard.drift import reference as reference_profile
from modelyard.errors import UserError
from modelyard.monitoring import DEFAULT_WINDOW
from modelyard.monitoring.drift import drift

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`30m`, `2h`, `7d`, `1w` ago, or an ISO date/time, as unix seconds; None means the whole log."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)\s*", text)
    if match:
        return (now or time.time()) - float(match[1]) * _UNITS[match[2]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UserError(
            f"--since {text!r} is neither a duration nor a date",
            "write e.g. 30m, 2h, 7d, or 2026-01-31T12:00",
        ) from None


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _label(output: Any) -> str | None:
    return str(output["label"]) if isinstance(output, dict) and "label" in output else None


def feedback_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """How many predictions got a true label, and how many of those the model had right. Only answers that are
    a label are scored: a forecast or a ranking is neither right nor wrong against one, so no accuracy is made
    up for them."""
    from modelyard.monitoring.prediction_log import answered_right

    given = rows[rows["label"].notna()]
    scored = [answered_right(_json(o), _json(t)) for o, t in zip(given["output"], given["label"], strict=True)]
    right = [s for s in scored if s is not None]
    return {"count": len(given), "accuracy": round(float(np.mean(right)), 4) if right else None}


def _judged_drift(
    recent: pd.DataFrame, ref: reference_profile.Reference, learner: Any, version: str | None
) -> tuple[dict[str, Any], dict[str, int]]:
    """Drift of the window's rows served by `version` (all rows when None) against its reference, and the rows
    per other version left out: a canary's or bandit's challenger, or a version of another task, answered those
    and has a reference of its own."""
    served = recent["version"].astype(str)
    mine = served == str(version) if version is not None else served == served
    judged, others = recent[mine.to_numpy()], {str(k): int(v) for k, v in served[~mine].value_counts().items()}
    listed = ", ".join(f"{v} of version {k}" for k, v in others.items())
    if others and not len(judged):
        reason = f"no predictions of version {version} in the window, only {listed}; monitor models:/NAME/VERSION"
        return {
            "detected": None,
            "reason": f"{reason} (or the bundle folder the server ran) to judge those against their own reference",
        }, others
    outputs = [_json(o) for o in judged["output"]]
    predicted = [label for label in map(_label, outputs) if label is not None]
    result = drift(ref, learner, [_json(x) for x in judged["input"]], predicted)
    if others:
        result["reason"] += f" (judged on version {version}'s {len(judged)} predictions; left out {listed})"
    return result, others


def summarize(
    rows: pd.DataFrame,
    ref: reference_profile.Reference,
    learner: Any,
    window: int,
    version: str | None = None,
    assumed: str | None = None,
) -> dict[str, Any]:
    """The monitor report for logged rows (oldest first) of one model; drift, predicted-label shares and live
    accuracy are judged on the rows `version` answered (every row when None), each version having its own
    reference and its own answers; `assumed`: why `version` is taken to be the monitored model's, said in the drift
    reason. Requests, the window's versions and latency count every version's traffic."""
    recent = rows.tail(window)
    own = recent if version is None else recent[(recent["version"].astype(str) == str(version)).to_numpy()]
    predicted = [label for label in map(_label, (_json(o) for o in own["output"])) if label is not None]
    latency = recent["latency_ms"].to_numpy(dtype=float)
    judged, left_out = _judged_drift(recent, ref, learner, version)
    if assumed:
        judged["reason"] += f" ({assumed})"
    answered = rows if version is None else rows[(rows["version"].astype(str) == str(version)).to_numpy()]
    shares = pd.Series(predicted, dtype=object).value_counts(normalize=True) if predicted else pd.Series()
    return {
        "requests": len(rows),
        "window": {
            "predictions": len(recent),
            "from": _iso(recent["ts"].min()) if len(recent) else None,
            "to": _iso(recent["ts"].max()) if len(recent) else None,
            "versions": {str(k): int(v) for k, v in recent["version"].value_counts().items()},
            "drift_left_out": left_out,
        },
        "latency_ms": {
            "p50": round(float(np.percentile(latency, 50)), 2) if len(latency) else None,
            "p95": round(float(np.percentile(latency, 95)), 2) if len(latency) else None,
        },
        "predicted_labels": {str(k): round(float(v), 4) for k, v in shares.head(20).items()},
        "drift": judged,
        "feedback": {**feedback_summary(answered), "version": version},
    }


def judged_version(model: Any, own: str, logged: set[str]) -> tuple[str, str | None]:
    """The version whose logged rows are `model`'s (`own`: what the server logs for it), and why when that is
    only assumed. A registry model is logged under its version number, a bundle folder the server ran itself under
    its content hash. A folder whose hash is not in the log may have been served through the registry, under a
    number unknown here: the log's only registry version is taken for it, and the report says so; otherwise (an
    export or retrain never served, next to another folder's traffic) it has no rows, and is not judged on others'."""
    if model.version is not None or own in logged:
        return own, None
    numbers = sorted(v for v in logged if not v.startswith("sha256:"))
    if len(numbers) != 1:
        return own, None
    return numbers[0], (
        f"{model.path} has no predictions logged as its own version {own}: taken to be registry version "
        f"{numbers[0]}, the only one in the log; monitor models:/{model.name}/{numbers[0]} if that is not this bundle"
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts)).astimezone().isoformat(timespec="seconds")


def monitor(model_ref: str, since: str | None = None, window: int = DEFAULT_WINDOW) -> dict[str, Any]:
    """Load the model (its reference profile and encoder) and report on its logged traffic."""
    from modelyard import loader
    from modelyard.monitoring.prediction_log import model_version, read_predictions
    from modelyard.monitoring.shadow import shadow_summary

    model = loader.load(model_ref)
    start = parse_since(since)
    rows = read_predictions(since=start, model=model.name)
    version, assumed = judged_version(model, model_version(model), set(rows["version"].astype(str)))
    report = summarize(rows, reference_profile.read(model.path), model.learner, window, version, assumed)
    shadow = shadow_summary(model.name, start)
    if shadow is not None:
        report["shadow"] = shadow
    return {"model": {"name": model.name, "version": model.version, "path": str(model.path)}, **report}
