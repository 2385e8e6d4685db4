"""Gaussian copula: each column's own empirical distribution, tied together by one correlation of normal scores.

For a class label the copula is fitted once per class (a mixture of copulas): a single Gaussian dependence only
carries monotone relations, and the label's relation to a feature often is not (late payers default, but so do
some who never used the card). Sampling draws the class by its real share, then the row from that class's copula.
Fast, deterministic for a seed, and a strong baseline for train-on-synthetic scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelyard.synthetic.marginals import Continuous, Discrete

MIN_CLASS_ROWS = 30  # below this a class shares one copula with all rows
RIDGE = 1e-3  # keeps the correlation positive definite when columns are (nearly) collinear


@dataclass
class _Copula:
    marginals: dict[str, Continuous | Discrete]
    indicators: dict[str, Discrete]  # continuous columns with missing values: is-missing as one more dimension
    cholesky: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame, discrete: list[str], order_by: np.ndarray | None, rng: np.random.Generator):
        marginals: dict[str, Continuous | Discrete] = {}
        indicators: dict[str, Discrete] = {}
        scores = []
        for name in frame.columns:
            column = frame[name].to_numpy()
            if name in discrete:
                marginal = Discrete.fit(column, order_by)
            else:
                column = column.astype(float)
                marginal = Continuous.fit(column)
                if marginal.missing > 0:
                    flags = np.where(np.isnan(column), "1", "0").astype(object)
                    indicators[name] = Discrete.fit(flags)
                    scores.append(indicators[name].to_normal(flags, rng))
            marginals[name] = marginal
            scores.append(marginal.to_normal(column, rng))
        resolutions = [m.resolution() for m in _dimensions(marginals, indicators)]
        z = np.stack(scores, axis=1)  # (N, D)
        corr = np.nan_to_num(np.corrcoef(z, rowvar=False), nan=0.0) if len(z) > 1 else np.eye(z.shape[1])
        kept = np.clip(resolutions, 0.05, 1.0)
        corr = np.atleast_2d(corr) / np.outer(kept, kept)  # undo the shrinkage by ties (see `resolution`)
        return cls(marginals, indicators, _cholesky(corr))
        return cls(marginals, indicators, np.linalg.cholesky(corr))

    def sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        z = rng.standard_normal((n, self.cholesky.shape[0])) @ self.cholesky.T  # (n, D), the fitted correlation
        out, d = {}, 0
        for name, marginal in self.marginals.items():
            missing = None
            if name in self.indicators:
                missing = self.indicators[name].from_normal(z[:, d]) == "1"
                d += 1
            values = marginal.from_normal(z[:, d])
            d += 1
            if missing is not None:
                values = np.where(missing, np.nan, values)
            out[name] = values
        return pd.DataFrame(out)


def _dimensions(marginals: dict, indicators: dict) -> list[Continuous | Discrete]:
    """The marginal of each dimension of the score matrix, in its order (an indicator before its column)."""
    out = []
    for name, marginal in marginals.items():
        out += [indicators[name], marginal] if name in indicators else [marginal]
    return out


def _cholesky(corr: np.ndarray) -> np.ndarray:
    """Nearest valid correlation (eigenvalues floored, unit diagonal, a small ridge), then its Cholesky factor."""
    corr = np.clip((corr + corr.T) / 2, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh(corr)
    corr = (vectors * np.maximum(values, 1e-6)) @ vectors.T
    scale = np.sqrt(np.diag(corr))
    corr = corr / np.outer(scale, scale)
    return np.linalg.cholesky((1 - RIDGE) * corr + RIDGE * np.eye(len(corr)))


class GaussianCopula:
    """One copula per class of `target` (classification), or one for all rows."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.parts: dict[str | None, _Copula] = {}
        self.shares: dict[str | None, float] = {}
        self.columns: list[str] = []
        self.target: str | None = None

    def fit(self, frame: pd.DataFrame, discrete: list[str], target: str, classification: bool) -> GaussianCopula:
        self.columns = list(frame.columns)
        labels = frame[target].astype(str) if classification else None
        if labels is not None and labels.value_counts().min() >= MIN_CLASS_ROWS:
            self.target = target
            features = frame.drop(columns=[target])
            for label, share in labels.value_counts(normalize=True).items():
                rows = features[(labels == label).to_numpy()]
                self.parts[label] = _Copula.fit(rows, discrete, None, self.rng)
                self.shares[label] = float(share)
            return self
        order_by = self._order_key(frame[target], classification)
        self.parts[None] = _Copula.fit(frame, discrete, order_by, self.rng)
        self.shares[None] = 1.0
        return self

    @staticmethod
    def _order_key(target: pd.Series, classification: bool) -> np.ndarray | None:
        """The target as numbers to order category levels by: binary labels as 0/1, a numeric target itself."""
        if not classification:
            return target.astype(float).to_numpy()
        codes, levels = pd.factorize(target.astype(str), sort=True)
        return codes.astype(float) if len(levels) == 2 else None

    def sample(self, n: int) -> pd.DataFrame:
        labels = list(self.shares)
        counts = self.rng.multinomial(n, [self.shares[k] for k in labels])
        pieces = []
        for label, count in zip(labels, counts, strict=True):
            if count:
                piece = self.parts[label].sample(int(count), self.rng)
                if self.target is not None:
                    piece[self.target] = label
                pieces.append(piece)
        frame = pd.concat(pieces, ignore_index=True)[self.columns]
        return frame.iloc[self.rng.permutation(len(frame))].reset_index(drop=True)
