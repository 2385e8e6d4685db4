"""What a model costs to run, measured now on this machine: size on disk, single-input latency, batched
throughput, and the price of 1,000 predictions at a given CPU-hour price."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

BATCH = 32
LATENCY_CALLS = 40
TIME_BUDGET_S = 4.0


def bundle_size(path: Path) -> int:
    """Bytes of every file in the bundle (checkpoints excluded: they are not shipped)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and "checkpoints" not in p.parts)


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(predict, inputs: list[Any], price_per_cpu_hour: float) -> dict[str, Any]:
    """p50/p95 latency of one input per call and throughput of batches (up to `BATCH`), each within a
    time budget; slow models (generators) get fewer calls and smaller batches."""
    if not inputs:
        return {}
    predict(inputs[:1])  # warm-up: lazy initialisation is not latency
    latencies: list[float] = []
    deadline = time.perf_counter() + TIME_BUDGET_S
    while len(latencies) < LATENCY_CALLS and (time.perf_counter() < deadline or len(latencies) < 3):
        latencies.append(_timed(predict, [inputs[len(latencies) % len(inputs)]]))
    size = int(np.clip(2.0 / max(np.median(latencies), 1e-6), 2, BATCH))  # slow models: smaller batches
    batch = (inputs * (size // len(inputs) + 1))[:size]
    seconds, done = 0.0, 0
    deadline = time.perf_counter() + TIME_BUDGET_S
    while done < 1 or (time.perf_counter() < deadline and done < 20):
        seconds += _timed(predict, batch)
        done += 1
    throughput = done * len(batch) / seconds
    cpus = torch.get_num_threads()
    per_1000_batched = 1000 / throughput / 3600 * cpus * price_per_cpu_hour
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    per_1000_single = 1000 * (p50 / 1000) / 3600 * cpus * price_per_cpu_hour
    return {
        "latency_p50_ms": float(p50),
        "latency_p95_ms": float(p95),
        "latency_calls": len(latencies),
        "batch_size": len(batch),
        "throughput_per_second": float(throughput),
        "threads": cpus,
        "cpu_count": os.cpu_count(),
        "price_per_cpu_hour": price_per_cpu_hour,
        "cost_per_1000_batched": per_1000_batched,
        "cost_per_1000_single": per_1000_single,
    }
