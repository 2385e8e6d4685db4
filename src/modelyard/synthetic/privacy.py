"""Does a synthetic table give real people away? Exact copies of real rows (there must be none) and the distance
to the closest real record (DCR), judged against the DCR of real holdout rows the generator never saw: synthetic
rows much closer to the training rows than new real rows are memorised, not generated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from modelyard.synthetic.marginals import level

DCR_ROWS = 5_000  # synthetic and holdout rows whose DCR is measured (all real training rows are searched)


def row_keys(frame: pd.DataFrame) -> pd.Series:
    """One hash per row of a model-form table (numbers rounded as written; -0.0 and 0.0 alike)."""
    canonical = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_float_dtype(values):
            canonical[name] = values.round(9) + 0.0
        else:
            canonical[name] = [level(v) for v in values.to_numpy(dtype=object)]
    return pd.util.hash_pandas_object(pd.DataFrame(canonical), index=False)


def exact_copies(synthetic: pd.DataFrame, real: pd.DataFrame) -> np.ndarray:
    """True for each synthetic row equal, in every synthesised column, to some real row."""
    return row_keys(synthetic[real.columns]).isin(set(row_keys(real))).to_numpy()


class _Space:
    """Rows as points: numbers by their real percentile (0..1, plus a missing flag), categories one-hot scaled so
    that a mismatch counts 1, like the largest possible numeric difference."""

    def __init__(self, real: pd.DataFrame, discrete: list[str]) -> None:
        self.discrete = discrete
        self.sorted = {c: np.sort(real[c].dropna().astype(float).to_numpy()) for c in real if c not in discrete}
        self.levels = {c: sorted({level(v) for v in real[c].to_numpy(dtype=object)}) for c in discrete}

    def points(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for name, values in self.sorted.items():
            column = frame[name].astype(float).to_numpy()
            n = max(len(values), 1)
            rank = (np.searchsorted(values, column, "left") + np.searchsorted(values, column, "right")) / (2 * n)
            missing = np.isnan(column)
            parts += [np.where(missing, 0.0, rank), missing.astype(float)]
        for name, levels in self.levels.items():
            text = np.array([level(v) for v in frame[name].to_numpy(dtype=object)], dtype=object)
            onehot = (text[:, None] == np.array(levels, dtype=object)[None, :]).astype(float)
            parts.append(onehot / np.sqrt(2))
        return np.column_stack(parts)


def _summary(distances: np.ndarray) -> dict[str, float]:
    return {
        "median": round(float(np.median(distances)), 4),
        "p05": round(float(np.quantile(distances, 0.05)), 4),
        "min": round(float(distances.min()), 4),
    }


def privacy_report(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, discrete: list[str], seed: int
) -> dict[str, Any]:
    """DCR of synthetic rows and of real holdout rows to the real training rows, and exact copies of any real row."""
    rng = np.random.default_rng(seed)
    space = _Space(train, discrete)
    index = NearestNeighbors(n_neighbors=1).fit(space.points(train))

    def dcr(frame: pd.DataFrame) -> np.ndarray:
        rows = frame.iloc[rng.permutation(len(frame))[:DCR_ROWS]]
        return index.kneighbors(space.points(rows))[0][:, 0]

    synthetic_dcr, holdout_dcr = dcr(synthetic), dcr(holdout)
    reference = float(np.quantile(holdout_dcr, 0.05))
    return {
        "exact_copies": int(exact_copies(synthetic, pd.concat([train, holdout])).sum()),
        "dcr": {
            "synthetic": _summary(synthetic_dcr),
            "real_holdout": _summary(holdout_dcr),
            "share_closer_than_holdout_p05": round(float((synthetic_dcr < reference).mean()), 4),
            "rows_measured": {"synthetic": len(synthetic_dcr), "real_holdout": len(holdout_dcr)},
            "space": "numbers as real percentiles, categories one-hot (a mismatch counts 1); Euclidean",
        },
    }
