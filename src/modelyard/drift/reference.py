"""The reference profile a bundle carries: what its training data looked like, for drift checks after launch.

Written at train time into the bundle (before the manifest is sealed, so it is checksummed like the
weights): `reference.json` (label, predicted-label and input-length distributions, cluster shares; no lengths
for a classifier of image files) and `reference.safetensors` (a sample of input embeddings and k-means
centroids). Embeddings come from the learner's optional `embed(inputs)`; rows the model never trained on
(validation, then test) are preferred, because a fine-tuned encoder maps its own training rows tighter than new
inputs, and comparing live traffic with them would flag drift where there is none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from modelyard.drift.statistics import bin_counts, quantile_edges
from modelyard.fsutil import atomic_path, atomic_write_json

JSON_FILE = "reference.json"
TENSOR_FILE = "reference.safetensors"
FORMAT = 1
PROFILE_ROWS = 512  # rows embedded and predicted at train time (clusters, predicted labels)
MMD_ROWS = 256  # of those, embeddings kept for the kernel two-sample test
LENGTH_BINS = 10
SEED = 0
FILE_PROFILE_ROWS = 256  # files (images) are decoded and run twice each: fewer keeps the profile to seconds on CPU
UNPROFILED = (
    "this task's inputs are not profiled for drift yet (labelled texts, table rows, audio and single-label images are)"
)


@dataclass
class Reference:
    """A bundle's reference profile, read back for monitoring."""

    profile: dict[str, Any]
    embeddings: np.ndarray | None = None
    centroids: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit length rows: drift is judged on direction (cosine geometry), not on the norm of pooled states."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def cluster_count(rows: int) -> int:
    return int(np.clip(round(np.sqrt(rows / 4)), 8, 16))


def assign(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per (normalised) embedding."""
    return np.argmax(embeddings @ centroids.T, axis=1)


def _labelled_frames(splits: dict[str, Any], column: str) -> dict[str, pd.DataFrame]:
    """Splits of labelled inputs (a DataFrame with `column` and `label` columns), by name."""
    return {
        name: frame
        for name, frame in splits.items()
        if isinstance(frame, pd.DataFrame) and {column, "label"} <= set(frame.columns) and len(frame)
    }


def _held_out_first(frames: dict[str, pd.DataFrame], column: str, rows: int) -> tuple[list[str], list[str]]:
    """Up to `rows` inputs: validation and test rows first (unseen by the weights), topped up from train."""
    picked, sources = [], []
    rng = np.random.default_rng(SEED)
    for name in ("validation", "test", "train"):
        if name not in frames or len(picked) >= rows:
            continue
        inputs = frames[name][column].astype(str).tolist()
        order = rng.permutation(len(inputs))[: rows - len(picked)]
        picked.extend(inputs[i] for i in order)
        sources.append(f"{name} ({len(order)})")
    return picked, sources


def _length_profile(frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Input lengths in characters over all splits: decile edges and the count per bin."""
    lengths = np.concatenate([f["text"].astype(str).str.len().to_numpy() for f in frames.values()])
    edges = quantile_edges(lengths, LENGTH_BINS)
    return {
        "unit": "characters",
        "edges": edges,
        "counts": bin_counts(lengths, edges).tolist(),
        "mean": round(float(lengths.mean()), 2),
    }


def _predicted_counts(learner: Any, sample: list[str]) -> dict[str, int] | None:
    """How often the learner predicts each of its labels on the sample; None when its answers are not labels."""
    answers = learner.predict(sample)
    if not (answers and isinstance(answers[0], dict) and "label" in answers[0]):
        return None
    counts: dict[str, int] = {str(label): 0 for label in getattr(learner, "labels", []) or []}
    for answer in answers:
        counts[str(answer["label"])] = counts.get(str(answer["label"]), 0) + 1
    return counts


def _embedding_profile(learner: Any, sample: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Unit-length embeddings of the sample (MMD_ROWS kept), k-means centroids and the sample's cluster counts."""
    from sklearn.cluster import KMeans

    vectors = normalize(learner.embed(sample))
    k = min(cluster_count(len(vectors)), max(len(vectors) // 4, 1))
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=SEED).fit(vectors)
    centroids = normalize(kmeans.cluster_centers_)
    assigned = np.bincount(assign(vectors, centroids), minlength=k)
    profile = {
        "dim": int(vectors.shape[1]),
        "rows": int(min(len(vectors), MMD_ROWS)),
        "clusters": k,
        "cluster_counts": assigned.tolist(),
        "normalized": True,
    }
    return profile, {"embeddings": vectors[:MMD_ROWS].copy(), "centroids": centroids}


def build(learner: Any, splits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The profile (JSON-able) and its tensors for one trained learner and its data splits."""
    profile: dict[str, Any] = {"format": FORMAT}
    if hasattr(learner, "reference_profile"):  # learners that profile their own inputs (tables: bins per feature)
        profile.update(learner.reference_profile(splits))
        return profile, {}
    frames, column, rows = _labelled_frames(splits, "text"), "text", PROFILE_ROWS
    if "train" in frames:
        profile["lengths"] = _length_profile(frames)
    else:  # a classifier of files (images): predicted labels and embeddings, nothing measured in characters
        frames, column, rows = _labelled_frames(splits, "path"), "path", FILE_PROFILE_ROWS
        profile["inputs"] = {"kind": "files"}
    if "train" not in frames:
        profile["inputs"] = {"skipped": UNPROFILED}
        return profile, {}
    shares = frames["train"]["label"].astype(str).value_counts(normalize=True).sort_index()
    profile["labels"] = {
        "rows": len(frames["train"]),
        "distribution": {k: round(float(v), 6) for k, v in shares.items()},
    }
    sample, sources = _held_out_first(frames, column, rows)
    profile["sample"] = {"rows": len(sample), "from": sources}
    counts = _predicted_counts(learner, sample)
    if counts is not None:
        profile["predicted"] = {"counts": counts}
    if not hasattr(learner, "embed"):
        judged = "lengths and predicted labels" if "lengths" in profile else "predicted labels"
        profile["embeddings"] = {
            "skipped": f"the {learner.backbone} learner has no embed(); input drift is judged on {judged} only"
        }
        return profile, {}
    profile["embeddings"], tensors = _embedding_profile(learner, sample)
    return profile, tensors


def write(directory: Path, learner: Any, splits: dict[str, Any]) -> None:
    """Write reference.json (and reference.safetensors if there are embeddings) into a bundle being built."""
    profile, tensors = build(learner, splits)
    if tensors:
        with atomic_path(directory / TENSOR_FILE) as tmp:
            save_file(tensors, str(tmp))
    atomic_write_json(directory / JSON_FILE, profile)


def read(directory: Path) -> Reference:
    """The profile of a bundle; an older bundle without one gives an empty profile and says so."""
    path = Path(directory) / JSON_FILE
    if not path.is_file():
        return Reference(
            {},
            notes=[
                "the bundle has no reference profile (trained before monitoring existed); "
                "retrain it to enable drift checks"
            ],
        )
    profile = json.loads(path.read_text(encoding="utf-8"))
    tensors_path = Path(directory) / TENSOR_FILE
    if tensors_path.is_file():
        tensors = load_file(str(tensors_path))
        return Reference(profile, tensors.get("embeddings"), tensors.get("centroids"))
    return Reference(profile)
