"""Forecast accuracy over whole horizons (mae, rmse, mape, mase) and the naive baselines to beat."""

from __future__ import annotations

from typing import Any

import numpy as np


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """Every future value equals the last observed one."""
    return np.full(horizon, history[-1], dtype=np.float64)


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Each future value repeats the value one season earlier: y[T+h] = y[T+h-m*(floor((h-1)/m)+1)]."""
    if season <= 1 or len(history) < season:
        return naive_forecast(history, horizon)
    j = np.arange(horizon)
    return history[len(history) + j - season * (j // season + 1)].astype(np.float64)


def mase_scale(train: np.ndarray, season: int) -> float:
    """In-sample MAE of the one-step seasonal naive forecast on the training part (Hyndman & Koehler)."""
    for m in (season, 1):
        if m >= 1 and len(train) > m:
            scale = float(np.mean(np.abs(train[m:] - train[:-m])))
            if scale > 0:
                return scale
    return 1.0


def forecast_metrics(
    actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray, observed: np.ndarray
) -> dict[str, Any]:
    """Metrics over every scored point of every window; `actual`, `forecast`, `observed` (N, H), `scale` (N,).

    Filled-in gap values are not scored (`observed` false). MAPE skips actual values of zero (it is undefined
    there) and says how many it skipped; it is null when every actual value is zero.
    """
    if actual.size == 0 or not observed.any():
        return {}
    err = (forecast - actual)[observed]
    scaled = (np.abs(forecast - actual) / scale[:, None])[observed]
    nonzero = observed & (np.abs(actual) > 1e-12)
    ape = np.abs((forecast - actual)[nonzero] / actual[nonzero])
    by_step = [
        float(np.mean(np.abs(forecast - actual)[:, h][observed[:, h]])) if observed[:, h].any() else None
        for h in range(actual.shape[1])
    ]
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(100 * np.mean(ape)) if ape.size else None,
        "mase": float(np.mean(scaled)),
        "mape_skipped_zeros": int(observed.sum() - nonzero.sum()),
        "windows": int(actual.shape[0]),
        "points": int(observed.sum()),
        "mae_by_step": by_step,
    }
