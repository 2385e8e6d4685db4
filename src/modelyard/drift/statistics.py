"""Drift statistics: the population stability index (PSI) and a kernel two-sample test (MMD, RBF kernel).

PSI's rule of thumb (0.1 watch, 0.2 act) assumes large samples: on a small window sampling noise alone gives a
PSI near (k - 1) (1/n + 1/m). Under no drift, PSI / (1/n + 1/m) is close to chi-square with k - 1 degrees of
freedom (Yurdakul 2018, "Statistical properties of the population stability index"), so the threshold used is
the larger of 0.2 and that distribution's 99.9% quantile scaled back: a small window needs a bigger shift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2

PSI_THRESHOLD = 0.2
PSI_NOISE_QUANTILE = 0.999
MMD_ALPHA = 0.001
MMD_PERMUTATIONS = 1999
SMOOTHING = 0.5  # counts added to every bin of both samples, so an empty bin never gives log(0)


@dataclass
class TestResult:
    """One drift test: its statistic, the threshold it is compared with, and the verdict."""

    statistic: float
    threshold: float
    detected: bool
    method: str
    n_reference: int
    n_window: int
    p_value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None}


def quantile_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Inner bin edges at the reference quantiles (duplicates dropped for discrete values)."""
    qs = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin; bin i holds values in (edges[i-1], edges[i]], open-ended at both sides."""
    index = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(float)


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    """PSI = sum (q - p) ln(q / p) over bins, from counts, each bin smoothed by SMOOTHING counts."""
    p = (np.asarray(reference, dtype=float) + SMOOTHING) / (np.sum(reference) + SMOOTHING * len(reference))
    q = (np.asarray(window, dtype=float) + SMOOTHING) / (np.sum(window) + SMOOTHING * len(window))
    return float(np.sum((q - p) * np.log(q / p)))


def psi_threshold(bins: int, n_reference: int, n_window: int) -> float:
    """0.2, or the 99.9% quantile of PSI under no drift when samples are too small for the rule of thumb."""
    noise = chi2.ppf(PSI_NOISE_QUANTILE, max(bins - 1, 1)) * (1 / max(n_reference, 1) + 1 / max(n_window, 1))
    return float(max(PSI_THRESHOLD, noise))


def psi_test(reference_counts: np.ndarray, window_counts: np.ndarray, method: str) -> TestResult:
    n_ref, n_win = int(np.sum(reference_counts)), int(np.sum(window_counts))
    stat = psi(reference_counts, window_counts)
    threshold = psi_threshold(len(reference_counts), n_ref, n_win)
    return TestResult(round(stat, 6), round(threshold, 6), stat > threshold, method, n_ref, n_win)


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(z: np.ndarray) -> float:
    """The median heuristic: the median pairwise distance of the pooled sample (Gretton et al. 2012)."""
    d = _sq_distances(z, z)[np.triu_indices(len(z), 1)]
    positive = d[d > 0]
    return float(np.sqrt(np.median(positive))) if len(positive) else 1.0


def _mmd2_unbiased(kernel: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 per row of `member` (P, N), True marking the first sample; the kernel diagonal is 1."""
    x = member.astype(float)
    y = 1.0 - x
    n, m = x.sum(1), y.sum(1)
    kx, ky = x @ kernel, y @ kernel
    sxx, syy, sxy = (kx * x).sum(1), (ky * y).sum(1), (kx * y).sum(1)
    return (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2 * sxy / (n * m)


def mmd_test(
    reference: np.ndarray,
    window: np.ndarray,
    permutations: int = MMD_PERMUTATIONS,
    alpha: float = MMD_ALPHA,
    seed: int = 0,
) -> TestResult:
    """Kernel two-sample test: unbiased MMD^2, RBF kernel with the median-heuristic bandwidth, and the
    permutation p-value (1 + #{permuted >= observed}) / (1 + permutations)."""
    x, y = np.asarray(reference, dtype=float), np.asarray(window, dtype=float)
    z = np.concatenate([x, y])
    bandwidth = median_bandwidth(z)
    kernel = np.exp(-_sq_distances(z, z) / (2 * bandwidth**2))
    rng = np.random.default_rng(seed)
    observed = np.zeros((1, len(z)), dtype=bool)
    observed[0, : len(x)] = True
    stat = float(_mmd2_unbiased(kernel, observed)[0])
    shuffled = np.stack([rng.permutation(observed[0]) for _ in range(permutations)])
    null = _mmd2_unbiased(kernel, shuffled)
    p_value = float((1 + np.sum(null >= stat)) / (1 + permutations))
    return TestResult(round(stat, 6), alpha, p_value < alpha, "mmd_rbf_permutation", len(x), len(y), round(p_value, 6))
