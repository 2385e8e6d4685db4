"""Bootstrap intervals on the test metrics of models other than classifiers, from what the learner can do.

Computed at train time (saved in metrics.json as `test_intervals`, shown by the model card) and by the report.
Classifiers need none of this: their intervals are rebuilt from the saved confusion matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.metrics.stats import bootstrap_ratios

Intervals = tuple[dict[str, dict[str, float]], str]


def _empty(test: Any) -> bool:
    return test is None or not len(test)


def generation_intervals(learner: Any, test: Any) -> Intervals | None:
    """Test loss and perplexity from each test window's (or chat example's) summed token loss."""
    if not hasattr(learner, "unit_losses") or _empty(test):
        return None
    sums, counts = learner.unit_losses(test)
    parts = {"loss": (sums, counts), "perplexity": (sums, counts)}
    method = f"percentile bootstrap over the {len(counts)} test windows or examples (token-weighted), 1,000 resamples"
    return bootstrap_ratios(parts, {"perplexity": np.exp}), method


def forecast_intervals(learner: Any, test: Any) -> Intervals | None:
    """mae, rmse, mape and mase from every test window's errors, resampled in blocks of `horizon` consecutive
    windows (rolling windows overlap, so neighbours share most of their errors)."""
    from modelyard.data.timeseries import window_origins
    from modelyard.metrics.forecast import mase_scale

    if not hasattr(learner, "forecast_windows") or _empty(test):
        return None
    origins = window_origins(test, learner.context, learner.horizon)
    if not origins:
        return None
    horizon = learner.horizon
    forecast = learner.forecast_windows(test, origins)  # (N, H)
    actual = np.stack([test.series[i].values[t : t + horizon] for i, t in origins])
    observed = np.stack([test.series[i].observed[t : t + horizon] for i, t in origins])
    scales = {i: mase_scale(test.series[i].values[: test.train_ends[i]], test.season) for i, _ in origins}
    scale = np.array([scales[i] for i, _ in origins])[:, None]
    error = np.where(observed, np.abs(forecast - actual), 0.0)
    nonzero = observed & (np.abs(actual) > 1e-12)
    percent = np.where(nonzero, 100 * error / np.where(nonzero, np.abs(actual), 1.0), 0.0)
    points = observed.sum(1)
    parts = {
        "mae": (error.sum(1), points),
        "rmse": ((error**2).sum(1), points),
        "mape": (percent.sum(1), nonzero.sum(1)),
        "mase": ((error / scale).sum(1), points),
    }
    method = (
        f"circular block bootstrap over test forecast windows (blocks of {horizon} overlapping windows), "
        "1,000 resamples"
    )
    return bootstrap_ratios(parts, {"rmse": np.sqrt}, block=horizon), method


def ranking_intervals(learner: Any, test: Any) -> Intervals | None:
    """The per-user metrics (recall, ndcg, hit rate at every k) by resampling test users; coverage belongs to
    the whole catalogue, not to a user, so it has none."""
    from modelyard.metrics import ranking

    if not hasattr(learner, "ranked") or _empty(test):
        return None
    top, relevant = learner.ranked(test)
    if not relevant:
        return None
    parts = {
        name: (values, np.ones_like(values))
        for k in ranking.KS
        for name, values in ranking.per_user(top, relevant, k).items()
    }
    return bootstrap_ratios(parts), "percentile bootstrap over test users, 1,000 resamples"


def speech_intervals(learner: Any, test: Any) -> Intervals | None:
    """WER and CER by resampling test utterances (the learner's transcripts of the last evaluation are reused)."""
    from modelyard.metrics.speech import error_parts

    if not hasattr(learner, "transcripts") or _empty(test):
        return None
    references, hypotheses, _, _ = learner.transcripts(test)
    return bootstrap_ratios(
        error_parts(references, hypotheses)
    ), "percentile bootstrap over test utterances, 1,000 resamples"


def regression_intervals(learner: Any, test: Any) -> Intervals | None:
    """A table regressor's rmse, mae and mape by resampling test rows (r2 is not a mean over rows: it has none)."""
    spec = getattr(learner, "spec", None)
    if getattr(spec, "kind", None) != "regression" or _empty(test):
        return None
    y, pred = learner.targets(test).astype(np.float64), learner.scores(test).astype(np.float64)
    error = np.abs(pred - y)
    nonzero = np.abs(y) > 1e-12
    parts = {
        "rmse": (error**2, np.ones_like(error)),
        "mae": (error, np.ones_like(error)),
        "mape": (np.where(nonzero, 100 * error / np.where(nonzero, np.abs(y), 1.0), 0.0), nonzero.astype(float)),
    }
    return bootstrap_ratios(parts, {"rmse": np.sqrt}), "percentile bootstrap over test rows, 1,000 resamples"


def assistant_intervals(learner: Any, test: Any) -> Intervals | None:
    """An assistant's shares of answerable questions answered with a cited answer, declined or answered from some
    cited passage, and of unanswerable ones declined, by resampling test questions. Balanced accuracy is the mean
    of two shares over different questions, not one ratio, so it has none."""
    if not hasattr(learner, "question_outcomes") or _empty(test):
        return None
    o = learner.question_outcomes(list(test))
    answerable, unanswerable = o["answerable"], 1 - o["answerable"]
    parts = {
        "cited_answer_rate": (o["cited"], answerable),
        "answerable_declined": (o["declined"] * answerable, answerable),
        "answer_in_passages": (o["anywhere"], answerable),
        "decline_rate": (o["declined"] * unanswerable, unanswerable),
    }
    return bootstrap_ratios(parts), f"percentile bootstrap over the {len(answerable)} test questions, 1,000 resamples"


def intervals_for(learner: Any, test: Any) -> Intervals | None:
    """The intervals this learner's kind of test metrics get, or None (classifiers, or no test data)."""
    for compute in (
        generation_intervals,
        forecast_intervals,
        ranking_intervals,
        speech_intervals,
        regression_intervals,
        assistant_intervals,
    ):
        found = compute(learner, test)
        if found is not None:
            return found
    return None
