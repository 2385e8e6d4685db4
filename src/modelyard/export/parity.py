"""The parity check run by every export and distillation: what the new model buys and what it costs.

Both models answer the same validation inputs in one run: agreement of their top class, the largest difference
of their class probabilities, accuracy, single-input latency (interleaved, so both see the same CPU load) and
batch throughput; plus bundle sizes. An export outside the tolerance fails unless forced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import UserError
from modelyard.tasks.base import Learner

WARMUP = 3


@dataclass(frozen=True)
class Tolerance:
    min_agreement: float = 0.98  # share of inputs whose top class is unchanged
    max_accuracy_drop: float = 0.01  # as a fraction: 0.01 is one accuracy point


def can_compare(learner: Learner) -> bool:
    return hasattr(learner, "export_examples") and hasattr(learner, "export_outputs")


def size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6, 2)


def _timed_outputs(learner: Learner, inputs: list[Any]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    outputs = learner.export_outputs(inputs)
    return outputs, time.perf_counter() - start


def _latencies(learners: tuple[Learner, Learner], probes: list[Any]) -> list[list[float]]:
    """Milliseconds of `predict([x])` for each probe, alternating the two models input by input."""
    for learner in learners:
        for x in probes[:WARMUP]:
            learner.predict([x])
    times: list[list[float]] = [[], []]
    for x in probes:
        for which, learner in enumerate(learners):
            start = time.perf_counter()
            learner.predict([x])
            times[which].append((time.perf_counter() - start) * 1e3)
    return times


def _percentiles(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(times, 50)), 3),
        "p95": round(float(np.percentile(times, 95)), 3),
    }


def compare(
    reference: Learner,
    candidate: Learner,
    split: Any,
    names: tuple[str, str] = ("original", "exported"),
    latency_samples: int = 100,
) -> dict[str, Any]:
    """The comparison table of two learners of the same task on one labelled split."""
    inputs, targets = reference.export_examples(split)
    if not len(inputs):
        raise UserError(
            "the validation split is empty: nothing to check the export against",
            "give the config a validation file or a validation share",
        )
    ref_out, ref_seconds = _timed_outputs(reference, inputs)
    new_out, new_seconds = _timed_outputs(candidate, inputs)
    probes = [inputs[i] for i in np.random.default_rng(0).permutation(len(inputs))[:latency_samples]]
    ref_times, new_times = _latencies((reference, candidate), probes)
    a, b = names
    return {
        "parity": {
            "agreement": round(float((ref_out.argmax(1) == new_out.argmax(1)).mean()), 4),
            "max_abs_diff": float(np.abs(ref_out - new_out).max()),
            "compared": "class probabilities",
            "samples": len(inputs),
        },
        "accuracy": {
            a: round(float((ref_out.argmax(1) == targets).mean()), 4),
            b: round(float((new_out.argmax(1) == targets).mean()), 4),
        },
        "latency_ms": {
            a: _percentiles(ref_times),
            b: _percentiles(new_times),
            "inputs_per_call": 1,
            "samples": len(probes),
        },
        "throughput": {
            a: round(len(inputs) / ref_seconds, 1),
            b: round(len(inputs) / new_seconds, 1),
            "unit": "samples/s",
            "batched": True,
        },
    }


def problems(
    report: dict[str, Any], tolerance: Tolerance, names: tuple[str, str] = ("original", "exported")
) -> list[str]:
    """What falls outside the tolerance, each with its numbers; empty when the export is acceptable."""
    found = []
    agreement = report["parity"]["agreement"]
    if agreement < tolerance.min_agreement:
        found.append(
            f"agreement {agreement:.2%} < {tolerance.min_agreement:.2%} (top class changed on "
            f"{1 - agreement:.2%} of {report['parity']['samples']} validation inputs)"
        )
    before, after = (report["accuracy"][n] for n in names)
    if before - after > tolerance.max_accuracy_drop:
        found.append(
            f"accuracy fell {100 * (before - after):.2f} points ({before:.2%} -> {after:.2%}), more "
            f"than the {100 * tolerance.max_accuracy_drop:.2f} allowed"
        )
    return found
