"""Report figures with matplotlib (Agg, no display), returned as `data:` URIs so the HTML stays one file."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]


def figure_uri(fig) -> str:
    """PNG at print resolution, base64 in a data URI; closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 6.0, height: float = 3.6):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def metric_bars(rows: list[tuple[str, float, tuple[float, float] | None]], metric: str) -> str:
    """One horizontal bar per model (ours and the baselines), with the 95% interval where there is one."""
    fig, ax = _figure(6.0, 0.5 + 0.45 * len(rows))
    names = [r[0] for r in rows][::-1]
    values = [r[1] for r in rows][::-1]
    errors = np.array(
        [[v - r[2][0], r[2][1] - v] if r[2] else [0.0, 0.0] for r, v in zip(rows[::-1], values, strict=True)]
    ).T
    ax.barh(
        names,
        values,
        xerr=errors,
        color=[COLORS[0] if i == len(rows) - 1 else "#94a3b8" for i in range(len(rows))],
        capsize=4,
    )
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.3f}", va="center", ha="left", fontsize=8)
    ax.set_xlabel(f"{metric} (test)")
    ax.set_xlim(0, max(1.0, max(values) * 1.15) if min(values) >= 0 else None)
    return figure_uri(fig)


def confusion_heatmap(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """Row-normalised (share of each true class); counts written in the cells when there are few classes."""
    k = len(labels)
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = min(11.0, max(4.5, 0.14 * k + 3))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of the true class")
    font = 8 if k <= 20 else max(3.0, 9 - k / 12)
    ax.set_xticks(range(k), [str(x)[:28] for x in labels], rotation=90, fontsize=font)
    ax.set_yticks(range(k), [str(x)[:28] for x in labels], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    return figure_uri(fig)


def curves(series: list[tuple[str, np.ndarray, np.ndarray]], xlabel: str, ylabel: str, diagonal: bool) -> str:
    """Several (name, x, y) curves on one set of axes (ROC or precision-recall)."""
    fig, ax = _figure(4.0, 3.6)
    for i, (name, x, y) in enumerate(series):
        ax.plot(x, y, color=COLORS[i % len(COLORS)], label=name, lw=1.6)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", color="#94a3b8", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="lower right" if diagonal else "lower left")
    return figure_uri(fig)


def reliability_diagram(rel: dict[str, Any]) -> str:
    """Accuracy against mean confidence per bin; the gap to the diagonal is the calibration error."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.6, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    edges = rel["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    filled = rel["count"] > 0
    ax.bar(
        centers[filled],
        rel["accuracy"][filled],
        width=width * 0.95,
        color=COLORS[0],
        alpha=0.8,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], ls="--", color="#64748b", lw=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"expected calibration error {rel['ece']:.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    hist.bar(centers, rel["count"], width=width * 0.95, color="#94a3b8")
    hist.set_xlabel("confidence of the predicted class")
    hist.set_ylabel("examples")
    hist.set_xlim(0, 1)
    return figure_uri(fig)


def learning_curves(history: list[dict[str, Any]], metric: str | None) -> str | None:
    """Training loss and the validation metrics per evaluation (epoch, or step when evaluated more often)."""
    steps = [h.get("step", h.get("epoch", i + 1)) for i, h in enumerate(history)]
    losses = [h.get("train_loss") for h in history]
    val_keys = [k for k in (metric, "loss", "accuracy") if k and any(k in h.get("validation", {}) for h in history)]
    if len(history) < 2 or not (any(x is not None for x in losses) or val_keys):
        return None
    fig, ax = _figure(6.0, 3.4)
    if any(x is not None for x in losses):
        ax.plot(
            steps,
            [np.nan if x is None else x for x in losses],
            marker="o",
            color=COLORS[1],
            label="train loss",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    other = ax.twinx()
    for i, key in enumerate(dict.fromkeys(val_keys)):
        values = [h.get("validation", {}).get(key, np.nan) for h in history]
        target = ax if key == "loss" else other
        target.plot(steps, values, marker="s", color=COLORS[(i + 2) % len(COLORS)], label=f"validation {key}")
    other.set_ylabel("validation metric")
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    return figure_uri(fig)


def label_distribution(counts: dict[str, dict[str, int]]) -> str:
    """Rows per class for each split, classes in order of training frequency."""
    order = sorted(counts.get("train", {}), key=lambda c: -counts["train"][c])
    k = len(order)
    fig, ax = _figure(min(11.0, max(5.0, 0.13 * k + 2)), 3.4)
    bottom = np.zeros(k)
    for i, (split, per_class) in enumerate(counts.items()):
        values = np.array([per_class.get(c, 0) for c in order], dtype=float)
        ax.bar(range(k), values, bottom=bottom, color=COLORS[i % len(COLORS)], label=split, width=0.85)
        bottom += values
    ax.set_xticks(range(k), [str(c)[:24] for c in order], rotation=90, fontsize=8 if k <= 30 else 4.5)
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    return figure_uri(fig)


def thumbnail(path: str, size: int = 96) -> str:
    """A small PNG of an image file, for tables of examples."""
    from modelyard.data.images import load_image

    image = load_image(path, size)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def forecast_plot(
    history: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    title: str,
    baselines: dict[str, np.ndarray] | None = None,
) -> str:
    """The last context values, then the actual future beside the forecast (and the baselines' forecasts)."""
    fig, ax = _figure(6.0, 2.8)
    n = len(history)
    ax.plot(range(n), history, color="#64748b", label="history")
    ax.plot(range(n, n + len(actual)), actual, color=COLORS[0], marker=".", label="actual")
    ax.plot(range(n, n + len(forecast)), forecast, color=COLORS[1], marker=".", ls="--", label="forecast")
    for name, values in (baselines or {}).items():
        ax.plot(range(n, n + len(values)), values, ls=":", lw=1.2, label=name)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return figure_uri(fig)
