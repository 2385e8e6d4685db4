"""MODEL_CARD.md: what the model is for, what it was trained on, how well it does (with intervals), where it
fails, and how to train it again. Written into the bundle at train time, so it is checksummed with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from modelyard.bundle import environment
from modelyard.fsutil import atomic_write_text
from modelyard.metrics.stats import HEADLINE, bootstrap_intervals, pairs_from_confusion
from modelyard.privacy.redact import hide_salt

CARD = "MODEL_CARD.md"
LOW_F1 = 0.5
SMALL_TEST = 500


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


TEXT_ALIKE = "same language, domain and length"
ALIKE = {  # what "like its training data" means for a task whose inputs are not texts
    "image_classification": "same kind of pictures: subjects, cameras, lighting and framing",
    "object_detection": "same kind of pictures: subjects, cameras, lighting and object sizes",
    "multimodal_classification": "same kind of pictures and texts: subjects, language and domain",
    "audio_classification": "same kind of recordings: sounds or speakers, microphones, background noise and length",
    "speech_recognition": "same language, accents, microphones and background noise",
    "tabular_classification": "same population, columns and value ranges",
    "tabular_regression": "same population, columns and value ranges",
    "forecasting": "same kind of series, frequency and history length",
    "recommendation": "same users, items and kind of interactions",
}


def _intended_use(manifest: dict[str, Any]) -> list[str]:
    labels = manifest.get("labels") or []
    task = str(manifest.get("task"))
    article = "An" if task[:1].lower() in "aeiou" else "A"
    lines = [f"{article} `{task}` model (`{manifest.get('backbone')}`) trained with modelyard.", *_derived(manifest)]
    if labels:
        shown = ", ".join(f"`{x}`" for x in labels[:12]) + (f" and {len(labels) - 12} more" if len(labels) > 12 else "")
        lines.append(f"It assigns one of {len(labels)} labels to an input: {shown}.")
    lines += [
        "",
        f"Intended for inputs like its training data ({ALIKE.get(task, TEXT_ALIKE)}; see *Data*), behind "
        "a product that lets people correct it. Not intended for decisions about people without human "
        "review, nor for inputs unlike the training data: see *Known limits*.",
    ]
    return lines


def _derived(manifest: dict[str, Any]) -> list[str]:
    """What an export or a distilled student is and where it came from: its metrics are its own, not the source's."""
    export = manifest.get("export")
    if export:
        source = export.get("source", {})
        version = f" (registry version {source['version']})" if source.get("version") else ""
        runtime = manifest.get("runtime", "torch") + (f", {manifest['quantize']}" if manifest.get("quantize") else "")
        return [
            f"This is an export ({runtime}) of the bundle `{source.get('path')}`{version}; the metrics below were "
            "measured on this export."
        ]
    distilled = manifest.get("distilled_from")
    if distilled:
        return [f"This student was distilled from the teacher bundle `{distilled.get('path')}`."]
    return []


def _data(manifest: dict[str, Any], report: dict[str, Any]) -> list[str]:
    files, sources = report.get("files", {}), report.get("sources", {})
    lines = ["| split | rows | sha256 | source |", "|---|---:|---|---|"]
    for split, info in manifest.get("data", {}).items():
        carved = "carved from train" if split != "train" else ""
        source = files.get(split, {}).get("read", {}).get("file", sources.get(split, carved))
        lines.append(f"| {split} | {info.get('rows', '')} | `{str(info.get('sha256', ''))[:16]}` | {source} |")
    for split, info in files.items():
        if info.get("summary"):
            lines.append(f"\nCleaning ({split}): {info['summary']}")
    return lines


def intervals_from_metrics(test: dict[str, Any], labels: list[str] | None) -> dict[str, dict[str, float]]:
    """Bootstrap intervals rebuilt from the saved confusion matrix (the metrics depend only on the pairs)."""
    if not labels or "confusion_matrix" not in test:
        return {}
    y_true, y_pred = pairs_from_confusion(test["confusion_matrix"])
    return bootstrap_intervals(y_true, y_pred, len(labels))


def _metrics(metrics: dict[str, Any], intervals: dict[str, dict[str, float]]) -> list[str]:
    test, validation = metrics.get("test", {}), metrics.get("validation", {})
    keys = [k for k, v in {**validation, **test}.items() if isinstance(v, int | float) and k != "samples"]
    baselines = {n: b.get("test", {}) for n, b in metrics.get("baselines", {}).items() if b.get("test")}
    head = [
        "metric",
        "validation",
        "test (95% bootstrap interval)" if intervals else "test",
        *(f"baseline {n} (test)" for n in baselines),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        cell = _num(test.get(key, ""))
        if key in intervals:
            cell += f" [{intervals[key]['low']:.4f}, {intervals[key]['high']:.4f}]"
        row = [key, _num(validation.get(key, "")), cell, *(_num(b.get(key, "")) for b in baselines.values())]
        lines.append("| " + " | ".join(row) + " |")
    if test.get("samples"):
        lines.append(f"\nTest split: {test['samples']} examples.")
    return lines


def _limits(metrics: dict[str, Any], report: dict[str, Any], config: dict[str, Any], intervals: bool) -> list[str]:
    test = metrics.get("test", {})
    lines = []
    per_class = {k: v for k, v in test.get("per_class", {}).items() if v.get("support")}
    if per_class:
        low = sorted((v["f1"], k) for k, v in per_class.items() if v["f1"] < LOW_F1)
        if low:
            lines.append(
                f"- {len(low)} classes have test F1 below {LOW_F1}: "
                + ", ".join(f"`{k}` ({f:.2f})" for f, k in low[:10])
                + (" ..." if len(low) > 10 else "")
            )
        else:
            f, k = min((v["f1"], k) for k, v in per_class.items())
            lines.append(f"- No class has test F1 below {LOW_F1}; the weakest is `{k}` ({f:.2f}).")
    tok = report.get("tokenizer", {})
    if "unknown_rate" in tok:
        lines.append(
            f"- Language coverage: the `{tok.get('name')}` tokenizer maps {tok['unknown_rate']:.1%} of the "
            "training tokens to [UNK]; text in scripts it does not cover is read poorly."
        )
    if "cjk_share" in report:
        lines.append(
            f"- {report['cjk_share']:.0%} of the training characters are CJK; expect weaker results on "
            "languages and scripts the training data does not contain."
        )
    lengths = report.get("text_length_chars", {})
    max_length = config.get("model", {}).get("max_length")
    if lengths:
        lines.append(
            f"- Training texts are {lengths.get('p5'):.0f}-{lengths.get('p95'):.0f} characters (5th-95th "
            f"percentile); longer inputs are cut" + (f" at {max_length} tokens." if max_length else ".")
        )
    if intervals and test.get("samples") and test["samples"] < SMALL_TEST:
        lines.append(f"- The test split has only {test['samples']} examples: the intervals above are wide.")
    lines += [f"- Data warning: {w}" for w in report.get("warnings", [])]
    return lines or ["- None detected automatically; evaluate on your own data before relying on it."]


def _guarantee(spent: dict[str, Any]) -> str:
    """What a private run's (ε, δ) holds for: each training example, or each federated site's records or data."""
    budget = f"(ε = {spent['epsilon']:.4g}, δ = {spent['delta']:g})-differential privacy"
    federated = spent.get("federated")
    if federated is None:
        return (
            f"Trained with DP-SGD: {budget} for each training example (target ε {spent['target_epsilon']:g}; "
            f"{spent['accountant'].upper()} accountant over {spent['steps']} steps, Poisson sampling rate "
            f"{spent['sample_rate']:g}, noise multiplier {spent['noise_multiplier']:g}, per-example gradients "
            f"clipped to {spent['max_grad_norm']:g})."
        )
    if federated["mechanism"] == "client_dp":
        return (
            f"Trained federated with client-level DP: {budget} for each site's whole data set (so for any of its "
            f"records). Each site clipped every update it sent to L2 norm {federated['max_update_norm']:g} and added "
            f"Gaussian noise (multiplier {spent['noise_multiplier']:g}); {spent['accountant'].upper()} accountant "
            f"over the {federated['updates']} updates the busiest site sent, no subsampling amplification."
        )
    return (
        f"Trained federated with DP-SGD at each site: {budget} for each training example of each site (target ε "
        f"{spent['target_epsilon']:g} split evenly over {federated['rounds']} rounds and summed over the "
        f"{federated['updates']} updates the busiest site sent; each round's ε from the site's "
        f"{spent['accountant'].upper()} accountant, Poisson sampling, per-example gradients clipped to "
        f"{spent['max_grad_norm']:g})."
    )


def _privacy(spent: dict[str, Any]) -> list[str]:
    """A private run's guarantee, in the terms a reader needs to judge it."""
    federated = spent.get("federated")
    drawn = (
        "The noise was"
        if federated and federated["mechanism"] == "client_dp"
        else "The noise and the batch sampling were"
    )
    return [
        _guarantee(spent),
        "",
        "The guarantee covers the weights' updates. It does not cover what is read from the data without "
        "noise: validation-based model selection, preprocessing statistics (tabular means, scales and category "
        "lists; the text length limit), the drift reference profile and the baselines in metrics.json. "
        f"See docs/{'federated' if federated else 'privacy_training'}.md.",
        "",
        f"{drawn} drawn from OS entropy, not from the seed below (which anyone holding this bundle can read): "
        "retraining from this config gives a model with the same guarantee, not these weights.",
    ]


def _reproduce(config_text: str, versions: dict[str, str]) -> list[str]:
    config = yaml.safe_load(config_text) or {}
    seed = config.get("train", {}).get("seed")
    return [
        "`config.yaml` in this bundle is the resolved config (every default filled in, data paths absolute). "
        "With the same data (check the sha256 above with `modelyard validate config.yaml --json`):",
        "",
        "```bash",
        "modelyard train config.yaml --output retrained-model",
        "```",
        "",
        f"Seed {seed}; versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "```yaml",
        hide_salt(config_text).rstrip(),  # the card is shared: a literal pseudonym salt is not
        "```",
    ]


def render(directory: Path, manifest: dict[str, Any]) -> str:
    """The card's Markdown for the bundle files in `directory` and its (possibly not yet sealed) manifest."""
    directory = Path(directory)
    metrics = _read_json(directory / "metrics.json")
    report = _read_json(directory / "data_report.json")
    config_path = directory / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    saved = {k: v for k, v in metrics.get("test_intervals", {}).items() if isinstance(v, dict)}
    intervals = saved or intervals_from_metrics(metrics.get("test", {}), manifest.get("labels"))
    intervals = {k: v for k, v in intervals.items() if k in HEADLINE or saved}
    parts = [
        [f"# Model card: {manifest.get('name')}"],
        ["## Intended use", "", *_intended_use(manifest)],
        ["## Data", "", *_data(manifest, report)],
        ["## Metrics", "", *_metrics(metrics, intervals)],
        *([["## Privacy", "", *_privacy(metrics["privacy"])]] if metrics.get("privacy") else []),
        ["## Known limits", "", *_limits(metrics, report, yaml.safe_load(config_text) or {}, bool(intervals))],
        ["## How to reproduce", "", *_reproduce(config_text, manifest.get("versions") or environment())],
    ]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def write_model_card(directory: Path, manifest: dict[str, Any]) -> Path:
    path = Path(directory) / CARD
    atomic_write_text(path, render(directory, manifest))
    return path
