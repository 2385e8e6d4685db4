"""Drift of a few numbers per input (an audio clip's duration, loudness, SNR, silence share): decile bins at train
time, PSI of the logged values against them at monitoring time."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.drift.statistics import bin_counts, psi_test, quantile_edges


def feature_bins(rows: list[dict[str, float]], names: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """For each name: decile edges of its values over `rows` and the count of rows in each bin."""
    features = {}
    for name in names:
        values = np.array([r[name] for r in rows], dtype=float)
        edges = quantile_edges(values, 10) if len(values) else []
        features[name] = {"edges": edges, "counts": bin_counts(values, edges).tolist()}
    return features


def feature_drift(profile: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """PSI per number in `profile["features"]`, the logged rows' values against the reference bins."""
    out = {}
    for name, ref in profile.get("features", {}).items():
        live = np.array([r[name] for r in rows if isinstance(r.get(name), int | float)], dtype=float)
        out[name] = psi_test(np.asarray(ref["counts"]), bin_counts(live, ref["edges"]), f"psi_{name}").as_dict()
    return out
