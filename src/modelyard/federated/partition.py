"""How a simulated federation's training rows are divided among its sites: IID, or skewed by label with a
Dirichlet(alpha) draw per class (Hsu et al. 2019), the usual benchmark for non-IID federated learning."""

from __future__ import annotations

import numpy as np

from modelyard.errors import ConfigError


def iid(rows: int, clients: int, seed: int) -> list[np.ndarray]:
    """Shuffled rows in `clients` near-equal parts."""
    if rows < clients:
        raise ConfigError(f"{rows} training rows cannot give {clients} clients a row each", "use fewer --clients")
    order = np.random.default_rng(seed).permutation(rows)
    return [np.sort(part) for part in np.array_split(order, clients)]


def dirichlet(labels: np.ndarray, clients: int, alpha: float, seed: int, min_rows: int = 1) -> list[np.ndarray]:
    """Each class's rows shared among clients in Dirichlet(alpha) proportions: small alpha, few classes per site.

    Redrawn (up to 100 times) until every client holds at least `min_rows` rows, so no site is empty.
    """
    if alpha <= 0:
        raise ConfigError(f"--alpha must be positive (got {alpha}); 0.5 is a common non-IID setting")
    if len(labels) < clients * min_rows:
        raise ConfigError(f"{len(labels)} training rows cannot give {clients} clients {min_rows} rows each")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for label in classes:
            rows = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for client, chunk in enumerate(np.split(rows, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_rows:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) draw gave each of {clients} clients {min_rows} rows",
        "raise --alpha, or use fewer --clients",
    )


def label_counts(labels: np.ndarray, parts: list[np.ndarray]) -> list[dict[str, int]]:
    """Per client, rows per label (for the report: how skewed the federation is)."""
    out = []
    for part in parts:
        values, counts = np.unique(labels[part], return_counts=True)
        out.append({str(v): int(c) for v, c in zip(values, counts, strict=True)})
    return out
