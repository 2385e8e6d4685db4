"""The parity check run by every export and distillation: what the new model buys and what it costs.

Both models answer the same held-out inputs (`checked_split`) in one run; the learner's `export_kind` says how to
compare them:
- "probabilities" (classifiers): `agreement` is the share of inputs whose answer is unchanged (the top class, or a
  binary table model's class at its tuned threshold, as served), `max_abs_diff` the largest class-probability
  difference, `accuracy` the accuracy of those answers against the labels (as metrics.json scores them).
- "forecasts" (forecasters): `agreement` is the share of forecast values within 1% of the original's (relative to
  the window's mean absolute forecast, so values near zero are fair), `max_abs_diff` is in the data's units,
  `accuracy` holds the mean absolute error (lower is better).
- "next_token" (language models): `agreement` is the share of validation positions whose most likely next token
  is unchanged, `max_abs_diff` the largest next-token probability difference, `accuracy` holds the perplexity
  (lower is better) and `loss` the mean next-token cross-entropy.
- "label_sets" (multi-label classifiers): `agreement` is the share of inputs whose label set at the bundle's
  thresholds is unchanged, `max_abs_diff` the largest per-label score difference, `accuracy` the subset accuracy
  (whole set right) against the labels.
- "transcripts" (speech recognisers): `agreement` is the share of utterances transcribed identically,
  `max_abs_diff` the WER between the two models' transcripts, `accuracy` holds the WER against the references;
  the export fails when WER rises more than `max_wer_increase` (half a point), absolutely.
- "entities" (entity extractors): `agreement` is the share of texts whose entity spans (type and words) are
  unchanged, `max_abs_diff` the largest per-word tag-probability difference, `accuracy` holds the entity F1
  against the true spans (higher is better, like accuracy).
- "detections" (detectors): `agreement` is the share of images whose confident boxes match one to one, both
  ways: each box scoring >= `model.min_score` in either model has its own box of the same class at IoU >= 0.5 in
  the other, scoring there >= min_score - `score_margin` (the learner's, 0.05). A peak at 0.31 in one model and
  0.28 in the other is rounding at the threshold, not a different answer; a moved, relabelled, missing or extra
  box still disagrees, and the mAP gate is unchanged. `accuracy` holds mAP@0.5 against the true boxes (higher is
  better, like accuracy), `map50_95` beside it.
`accuracy.metric` names the metric either way. Single-input latency and batch throughput (both interleaved, so
both models see the same CPU load) and bundle sizes complete the table. An export outside the tolerance fails
unless forced.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import UserError
from modelyard.protocols import Learner

WARMUP = 3
THROUGHPUT_CHUNK = 256  # batched throughput alternates the models every this many inputs
FORECAST_RTOL = 0.01  # a forecast value "agrees" within 1% of the window's mean absolute original forecast
FLOAT_SLACK = 1e-9  # metrics are shares of counts: a difference this small is rounding, not a change
KINDS = ("probabilities", "forecasts", "next_token", "transcripts", "label_sets", "detections", "entities")


@dataclass(frozen=True)
class Tolerance:
    min_agreement: float = 0.98  # share of inputs (or values, tokens) that agree, as defined by the kind
    max_accuracy_drop: float = 0.01  # as a fraction: 0.01 is one accuracy point
    max_error_increase: float = 0.02  # lower-is-better metrics (mae, perplexity): at most 2% worse, relatively
    max_wer_increase: float = 0.005  # transcripts: word error rate at most half a point higher, absolutely

    def __post_init__(self) -> None:
        """Out-of-range values would only fail (or pass everything) after the whole export: refuse them first."""
        if not 0 <= self.min_agreement <= 1:
            raise UserError(
                f"min_agreement {self.min_agreement} is not a share between 0 and 1", "0.98 means 98% agree"
            )
        for name in ("max_accuracy_drop", "max_error_increase", "max_wer_increase"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"{name} {getattr(self, name)} is not a fraction between 0 and 1", "0.01 means 1%")


def can_compare(learner: Learner) -> bool:
    return hasattr(learner, "export_examples") and hasattr(learner, "export_outputs")


def kind(learner: Learner) -> str:
    return getattr(learner, "export_kind", "probabilities")


def size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6, 2)


def _timed_outputs(learners: tuple[Learner, Learner], inputs: list[Any]) -> tuple[list[np.ndarray], list[float]]:
    """Both models' outputs for all inputs and the seconds each took, chunk by chunk in turn (as for latency)."""
    outputs: list[list[np.ndarray]] = [[], []]
    seconds = [0.0, 0.0]
    for start in range(0, len(inputs), THROUGHPUT_CHUNK):
        chunk = inputs[start : start + THROUGHPUT_CHUNK]
        for which, learner in enumerate(learners):
            began = time.perf_counter()
            outputs[which].append(learner.export_outputs(chunk))
            seconds[which] += time.perf_counter() - began
    return [np.concatenate(parts) for parts in outputs], seconds


def _latencies(learners: tuple[Learner, Learner], probes: list[Any]) -> list[list[float]]:
    """Milliseconds of `export_outputs([x])` (preprocessing and model, one input) per probe, alternating models."""
    for learner in learners:
        for x in probes[:WARMUP]:
            learner.export_outputs([x])
    times: list[list[float]] = [[], []]
    for x in probes:
        for which, learner in enumerate(learners):
            start = time.perf_counter()
            learner.export_outputs([x])
            times[which].append((time.perf_counter() - start) * 1e3)
    return times


def _percentiles(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(times, 50)), 3),
        "p95": round(float(np.percentile(times, 95)), 3),
    }


def _probabilities(decide: Any | None) -> Any:
    """The comparison of two classifiers' class probabilities, each input answered with the class the reference
    learner's `decide` picks (a binary table model's tuned threshold: what it serves), else the top class."""

    def compare(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
        a, b = names
        ref_classes, new_classes = (decide(p) if decide is not None else p.argmax(1) for p in (ref, new))
        return {
            "parity": {
                "agreement": round(float((ref_classes == new_classes).mean()), 4),
                "max_abs_diff": float(np.abs(ref - new).max()),
                "compared": "class probabilities; agreement = share of inputs with the same answer"
                + (" (the class at the model's decision threshold)" if decide is not None else " (top class)"),
            },
            "accuracy": {
                a: round(float((ref_classes == targets).mean()), 4),
                b: round(float((new_classes == targets).mean()), 4),
                "metric": "accuracy",
            },
        }

    return compare


def _forecasts(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
    a, b = names
    level = np.abs(ref).mean(axis=1, keepdims=True)  # (N, 1) each window's scale
    close = np.abs(ref - new) <= FORECAST_RTOL * np.maximum(level, 1e-12)
    return {
        "parity": {
            "agreement": round(float(close.mean()), 4),
            "max_abs_diff": float(np.abs(ref - new).max()),
            "compared": f"forecast values; agreement = share within {FORECAST_RTOL:.0%} of the original's "
            "(relative to each window's mean absolute forecast)",
        },
        "accuracy": {
            a: round(float(np.abs(ref - targets).mean()), 6),
            b: round(float(np.abs(new - targets).mean()), 6),
            "metric": "mae",
        },
    }


def _cross_entropy(probs: np.ndarray, targets: np.ndarray) -> float:
    picked = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]  # (N, T)
    return float(-np.log(np.maximum(picked, 1e-30)).mean())


def _next_tokens(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
    a, b = names
    losses = (_cross_entropy(ref, targets), _cross_entropy(new, targets))
    return {
        "parity": {
            "agreement": round(float((ref.argmax(-1) == new.argmax(-1)).mean()), 4),
            "max_abs_diff": float(np.abs(ref - new).max()),
            "compared": "next-token probabilities; agreement = share of positions with the same most likely token",
            "positions": int(targets.size),
        },
        "accuracy": {
            a: round(math.exp(min(losses[0], 50.0)), 4),
            b: round(math.exp(min(losses[1], 50.0)), 4),
            "metric": "perplexity",
        },
        "loss": {a: round(losses[0], 5), b: round(losses[1], 5)},
    }


def _transcripts(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
    from modelyard.metrics.speech import speech_metrics

    a, b = names
    ref, new, targets = ([str(x) for x in v] for v in (ref, new, targets))
    return {
        "parity": {
            "agreement": round(float(np.mean([x == y for x, y in zip(ref, new, strict=True)])), 4),
            "max_abs_diff": speech_metrics(ref, new)["wer"],
            "compared": "transcripts; agreement = share of utterances transcribed identically, max_abs_diff = "
            "the WER of the exported transcripts against the original's",
        },
        "accuracy": {a: speech_metrics(targets, ref)["wer"], b: speech_metrics(targets, new)["wer"], "metric": "wer"},
    }


def _label_sets(decide: Any) -> Any:
    """The comparison of two multi-label models' scores, thresholded by the reference learner's `decide`."""

    def compare(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
        a, b = names
        ref_sets, new_sets = decide(ref), decide(new)
        return {
            "parity": {
                "agreement": round(float((ref_sets == new_sets).all(1).mean()), 4),
                "max_abs_diff": float(np.abs(ref - new).max()),
                "compared": "label scores; agreement = share of inputs with the same label set at the thresholds",
            },
            "accuracy": {
                a: round(float((ref_sets == targets).all(1).mean()), 4),
                b: round(float((new_sets == targets).all(1).mean()), 4),
                "metric": "accuracy",
                "note": "subset accuracy: the whole label set right",
            },
        }

    return compare


def _detections(learner: Any) -> Any:
    """The comparison of two detectors' padded (N, K, 6) boxes, scored by the reference learner's
    `parity_scores` (mAP against the true boxes) and `agreement` (per image: the same confident boxes)."""

    def compare(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
        a, b = names
        scores = learner.parity_scores(ref, targets), learner.parity_scores(new, targets)
        return {
            "parity": {
                "agreement": round(float(learner.agreement(ref, new)), 4),
                "max_abs_diff": float(np.abs(ref[:, 0, 4] - new[:, 0, 4]).max()),
                "compared": "detections; agreement = share of images whose confident boxes match one to one "
                f"(same class, IoU >= 0.5, scoring >= min_score - {learner.score_margin} in the other model), "
                "max_abs_diff = the largest difference of an image's top score",
            },
            "accuracy": {a: scores[0]["map50"], b: scores[1]["map50"], "metric": "map50"},
            "map50_95": {a: scores[0]["map50_95"], b: scores[1]["map50_95"]},
        }

    return compare


def _entities(tags: list[str]) -> Any:
    """The comparison of two entity extractors' per-text (words, tags) probabilities, decoded with `tags`."""
    from modelyard.data.entities import tag_spans
    from modelyard.metrics.entities import entity_metrics

    def spans(words: np.ndarray) -> list[tuple[Any, ...]]:
        decoded = [tags[i] for i in words.argmax(-1)] if len(words) else []
        found = tag_spans(" " * len(decoded), [(i, i + 1) for i in range(len(decoded))], decoded)
        return [(s["start"], s["end"], s["label"]) for s in found]  # word positions, not characters

    def compare(ref: np.ndarray, new: np.ndarray, targets: np.ndarray, names: tuple[str, str]) -> dict:
        a, b = names
        decoded = [[[tags[i] for i in w.argmax(-1)] if len(w) else [] for w in side] for side in (ref, new)]
        diffs = [float(np.abs(x - y).max()) for x, y in zip(ref, new, strict=True) if len(x)]
        gold = [list(t) for t in targets]
        scores = [entity_metrics(gold, d).get("entity_f1", 0.0) for d in decoded]
        same = [spans(x) == spans(y) for x, y in zip(ref, new, strict=True)]
        return {
            "parity": {
                "agreement": round(float(np.mean(same)), 4),
                "max_abs_diff": max(diffs, default=0.0),
                "compared": "per-word tag probabilities; agreement = share of texts with the same entity spans",
                "entities": sum(len(spans(x)) for x in ref),
                "words_retagged": sum(x != y for r, n in zip(*decoded, strict=True) for x, y in zip(r, n, strict=True)),
            },
            "accuracy": {a: round(scores[0], 4), b: round(scores[1], 4), "metric": "entity_f1"},
        }

    return compare


COMPARE: dict[str, Any] = {
    "forecasts": _forecasts,
    "next_token": _next_tokens,
    "transcripts": _transcripts,
}


def checked_split(splits: dict[str, Any], learner: Learner) -> tuple[str, Any]:
    """(name, split) the parity check answers: validation, unless it is empty or the model fitted its rows (a
    bagged table model's fold models train on them: its scores there would be in-sample), then test."""
    fitted = getattr(learner, "fits_validation_rows", False)
    if len(splits["validation"]) and not (fitted and len(splits["test"])):
        return "validation", splits["validation"]
    return "test", splits["test"]


def compare(
    reference: Learner,
    candidate: Learner,
    checked: tuple[str, Any],
    names: tuple[str, str] = ("original", "exported"),
    latency_samples: int = 100,
) -> dict[str, Any]:
    """The comparison table of two learners of the same task on one labelled split, `checked` = (name, split)."""
    split_name, split = checked
    inputs, targets = reference.export_examples(split)
    if not len(inputs):
        raise UserError(
            "the validation and test splits are empty: nothing to check the export against",
            "give the config a validation file or a validation share",
        )
    (ref_out, new_out), (ref_seconds, new_seconds) = _timed_outputs((reference, candidate), inputs)
    probes = [inputs[i] for i in np.random.default_rng(0).permutation(len(inputs))[:latency_samples]]
    ref_times, new_times = _latencies((reference, candidate), probes)
    a, b = names
    scorer = (
        _label_sets(reference.decide)
        if kind(reference) == "label_sets"
        else _entities(reference.tags)
        if kind(reference) == "entities"
        else _detections(reference)
        if kind(reference) == "detections"
        else _probabilities(getattr(reference, "decide", None))
        if kind(reference) == "probabilities"
        else COMPARE[kind(reference)]
    )
    table = scorer(ref_out, new_out, np.asarray(targets), names)
    table["parity"]["samples"] = len(inputs)
    table["parity"]["split"] = split_name
    return {
        **table,
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


def _beyond(excess: float, limit: float) -> bool:
    """`excess` over `limit` by more than float rounding: 0.31 - 0.30 is 0.010000000000000009, which is exactly
    the one point a 0.01 limit allows, not more."""
    return excess > limit + FLOAT_SLACK


def problems(
    report: dict[str, Any], tolerance: Tolerance, names: tuple[str, str] = ("original", "exported")
) -> list[str]:
    """What falls outside the tolerance, each with its numbers; empty when the export is acceptable."""
    found = []
    agreement = report["parity"]["agreement"]
    if _beyond(tolerance.min_agreement - agreement, 0.0):
        found.append(
            f"agreement {agreement:.2%} < {tolerance.min_agreement:.2%} ({report['parity'].get('compared', '')}; "
            f"{report['parity']['samples']} {report['parity'].get('split', 'validation')} inputs)"
        )
    metric = report["accuracy"].get("metric", "accuracy")
    before, after = (report["accuracy"][n] for n in names)
    if metric in ("accuracy", "map50", "entity_f1") and _beyond(before - after, tolerance.max_accuracy_drop):
        found.append(
            f"{metric} fell {100 * (before - after):.2f} points ({before:.2%} -> {after:.2%}), more "
            f"than the {100 * tolerance.max_accuracy_drop:.2f} allowed"
        )
    if metric == "wer" and _beyond(after - before, tolerance.max_wer_increase):
        found.append(
            f"WER rose {100 * (after - before):.2f} points ({before:.2%} -> {after:.2%}), more than the "
            f"{100 * tolerance.max_wer_increase:.2f} allowed"
        )
    rise_allowed = abs(before) * tolerance.max_error_increase
    if metric not in ("accuracy", "map50", "entity_f1", "wer") and _beyond(after - before, rise_allowed):
        found.append(
            f"{metric} rose {after / before - 1:.2%} ({before:.4g} -> {after:.4g}), more than the "
            f"{tolerance.max_error_increase:.2%} allowed"
        )
    return found
