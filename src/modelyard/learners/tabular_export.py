"""A tabular learner's ONNX graphs and its drift reference (bins per feature for PSI, TreeSHAP points per bin for
the characteristic stability index), apart from training and prediction."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from modelyard.fsutil import atomic_path
from modelyard.learners import tabular_gbdt as gbdt

if TYPE_CHECKING:
    from modelyard.learners.tabular import TabularLearner

PROFILE_ROWS = 20_000
POINTS_ROWS = 5_000  # TreeSHAP is the slow part: points per bin are means, stable on fewer rows
BINS = 10
MLP_OPSET = 17


def write_member_onnx(learner: TabularLearner, directory: Path) -> None:
    features = len(learner.spec.encoder.feature_names)
    if learner.booster is not None and "lightgbm" in learner.spec.weights:
        graphs = gbdt.gbdt_onnx(learner.booster, features)
        for name, graph in zip(gbdt.onnx_files(len(graphs)), graphs, strict=True):
            with atomic_path(directory / name) as tmp:
                Path(tmp).write_bytes(graph)
    if learner.catboost is not None and "catboost" in learner.spec.weights:
        from modelyard.learners.tabular_catboost import write_onnx

        write_onnx(learner.catboost, directory)
    if learner.mlp is not None and "mlp" in learner.spec.weights:
        module = learner.mlp.module.eval()
        example = torch.zeros((2, features), dtype=torch.float32)
        with atomic_path(directory / "mlp.onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example,), str(tmp), dynamo=False, opset_version=MLP_OPSET, input_names=["features"],
                output_names=["logits"], dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            )  # fmt: skip


def _bins(values: np.ndarray, cardinality: int) -> tuple[list[float] | None, np.ndarray]:
    """(inner edges or None for categorical codes, bin index per row; the last bin holds missing values)."""
    from modelyard.drift.statistics import quantile_edges

    missing = np.isnan(values)
    if cardinality:
        index = np.where(missing, cardinality, np.nan_to_num(values)).astype(int)
        return None, np.clip(index, 0, cardinality)
    present = values[~missing]
    edges = quantile_edges(present, BINS) if len(present) else []
    index = np.searchsorted(np.asarray(edges), np.nan_to_num(values), side="left")
    return edges, np.where(missing, len(edges) + 1, index)


def bin_index(values: np.ndarray, edges: list[float] | None, cardinality: int) -> np.ndarray:
    """The bin of each value under a saved profile (same rule as at train time)."""
    missing = np.isnan(values)
    if edges is None:
        return np.where(missing, cardinality, np.clip(np.nan_to_num(values), 0, cardinality - 1)).astype(int)
    index = np.searchsorted(np.asarray(edges), np.nan_to_num(values), side="left")
    return np.where(missing, len(edges) + 1, index)


def reference_profile(learner: TabularLearner, train: pd.DataFrame) -> dict[str, Any]:
    """Per encoded feature: bin edges, training counts per bin (last bin: missing) and, with a GBDT member, the
    mean TreeSHAP contribution per bin (the characteristic's "points"), plus predicted-label counts."""
    sample = train.sample(min(len(train), PROFILE_ROWS), random_state=0)
    x = learner.spec.encoder.transform(sample)
    contrib = None
    if learner.booster is not None and learner.spec.kind != "multiclass":
        contrib = gbdt.contributions(learner.booster, x[:POINTS_ROWS], learner.spec.kind, 2, 1)
    features = {}
    for i, feature in enumerate(learner.spec.encoder.features):
        card = feature["cardinality"]
        edges, index = _bins(x[:, i], card)
        size = card + 1 if edges is None else len(edges) + 2
        entry: dict[str, Any] = {"edges": edges, "cardinality": card}
        entry["counts"] = np.bincount(index, minlength=size).tolist()
        if contrib is not None:
            head = index[:POINTS_ROWS]
            sums = np.bincount(head, weights=contrib[:, i], minlength=size)
            entry["points"] = (sums / np.maximum(np.bincount(head, minlength=size), 1)).round(6).tolist()
        features[feature["name"]] = entry
    profile: dict[str, Any] = {"features": features, "feature_rows": len(sample)}
    if learner.spec.labels:
        answers = learner.predict_frame(sample)["label"].astype(str).value_counts()
        profile["predicted"] = {"counts": {label: int(answers.get(label, 0)) for label in learner.spec.labels}}
    return profile


def feature_drift(profile: dict[str, Any], x: np.ndarray, names: list[str]) -> dict[str, Any]:
    """PSI per feature (credit-risk standard) and, where points exist, the characteristic stability index:
    sum over bins of (live share - reference share) x points, the shift of the mean score it causes."""
    from modelyard.drift.statistics import psi_test

    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        entry = profile["features"].get(name)
        if entry is None:
            continue
        size = len(entry["counts"])
        live = np.bincount(bin_index(x[:, i], entry["edges"], entry["cardinality"]), minlength=size)[:size]
        ref = np.asarray(entry["counts"], dtype=float)
        test = psi_test(ref, live.astype(float), "psi").as_dict()
        if "points" in entry:
            shares = live / max(live.sum(), 1) - ref / max(ref.sum(), 1)
            test["csi"] = round(float(np.sum(shares * np.asarray(entry["points"]))), 6)
        out[name] = test
    return out
