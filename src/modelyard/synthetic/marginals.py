"""One column's distribution and the map between its values and a standard normal score, both ways.

Both generators work on normal scores: the copula correlates them, the GAN learns them. Continuous columns use
the empirical distribution (the distributional transform spreads ties, such as the many zero bills, over their
probability mass, so a point mass comes back as exactly that value); discrete columns give each level an interval
of [0, 1] as wide as its frequency. Missing values are a level of their own (discrete) or an indicator column
(continuous), so they come back at their real rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

MISSING = "\x00missing"
STEP_LEVELS = 50  # a numeric column with at most this many distinct values keeps exactly those values
EDGE = 1e-6


def level(value: object) -> str:
    """A discrete cell as a level: its text, or MISSING for None / NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    return str(value)


def _uniform_to_normal(u: np.ndarray) -> np.ndarray:
    return ndtri(np.clip(u, EDGE, 1 - EDGE))


def resolution(shares: np.ndarray) -> float:
    """The share of a normal score's variance that its cell (tie or level) fixes: sum of p * E[Z | cell]^2.

    A jittered score is its cell's mean plus independent noise, so correlations measured on scores come out
    shrunk by this factor for each of the two columns; the copula divides it out (1 for distinct values)."""
    edges = ndtri(np.clip(np.concatenate([[0.0], np.cumsum(shares)]), 0.0, 1.0))
    density = np.exp(-0.5 * np.nan_to_num(edges, posinf=1e3, neginf=-1e3) ** 2) / np.sqrt(2 * np.pi)
    means = (density[:-1] - density[1:]) / np.maximum(shares, 1e-12)
    return float(np.sum(shares * means**2))


@dataclass
class Continuous:
    """The sorted present values of a numeric (or date) column and its share of missing ones."""

    values: np.ndarray
    missing: float
    stepped: bool  # few distinct values: sample only those (no values between -1 and 0 for a status code)

    @classmethod
    def fit(cls, column: np.ndarray) -> Continuous:
        present = np.sort(column[~np.isnan(column)])
        if not len(present):
            present = np.zeros(1)
        return cls(present, float(np.isnan(column).mean()), len(np.unique(present)) <= STEP_LEVELS)

    def to_normal(self, column: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Scores of present values (a random point of each value's share of the CDF); missing rows get noise."""
        n = len(self.values)
        low = np.searchsorted(self.values, column, side="left")
        high = np.searchsorted(self.values, column, side="right")
        u = (low + rng.random(len(column)) * (high - low)) / n
        z = _uniform_to_normal(u)
        missing = np.isnan(column)
        z[missing] = rng.standard_normal(int(missing.sum()))
        return z

    def resolution(self) -> float:
        """Ties make cells (see `resolution`); missing rows carry pure noise."""
        _, counts = np.unique(self.values, return_counts=True)
        return (1 - self.missing) * resolution(counts / counts.sum())

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        u = ndtr(z)
        n = len(self.values)
        if self.stepped:
            return self.values[np.clip((u * n).astype(int), 0, n - 1)]
        return np.interp(u * (n - 1), np.arange(n), self.values)


@dataclass
class Discrete:
    """Levels in a chosen order (the missing level included) and their cumulative shares."""

    levels: list[str]
    cumulative: np.ndarray

    @classmethod
    def fit(cls, column: np.ndarray, order_by: np.ndarray | None = None) -> Discrete:
        """Levels ordered by the mean of `order_by` (the target) where given, so that a level's relation to the
        target is monotone and survives the Gaussian dependence; by frequency otherwise."""
        text = np.array([level(v) for v in column], dtype=object)
        levels, counts = np.unique(text, return_counts=True)
        key = -counts.astype(float)
        if order_by is not None:
            key = np.array([np.nanmean(order_by[text == level]) for level in levels])
        order = np.argsort(key, kind="stable")
        shares = counts[order] / counts.sum()
        return cls([str(levels[i]) for i in order], np.cumsum(shares))

    def resolution(self) -> float:
        return resolution(np.diff(np.concatenate([[0.0], self.cumulative])))

    def codes(self, column: np.ndarray) -> np.ndarray:
        index = {level: i for i, level in enumerate(self.levels)}
        return np.array([index.get(level(v), 0) for v in column], dtype=int)

    def to_normal(self, column: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        codes = self.codes(column)
        high = self.cumulative[codes]
        low = np.concatenate([[0.0], self.cumulative])[codes]
        return _uniform_to_normal(low + rng.random(len(codes)) * (high - low))

    def from_codes(self, codes: np.ndarray) -> np.ndarray:
        out = np.array(self.levels, dtype=object)[codes]
        out[out == MISSING] = None
        return out

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        codes = np.searchsorted(self.cumulative, ndtr(z), side="left")
        return self.from_codes(np.clip(codes, 0, len(self.levels) - 1))
