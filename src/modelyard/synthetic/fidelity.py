"""How faithful a synthetic table is: each column's distribution, the correlations between columns, and whether a
model trained on synthetic rows scores real rows as well as one trained on real rows (train-on-synthetic /
test-on-real, "TSTR", against train-on-real, "TRTR"), both LightGBM at its defaults scored on the real holdout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from modelyard.learners.scorecard import lightgbm_default
from modelyard.learners.tabular_encoding import TabularEncoder
from modelyard.metrics.risk import binary_metrics, regression_metrics
from modelyard.synthetic.marginals import MISSING, level
from modelyard.synthetic.table import RealTable


def _levels(values: pd.Series) -> pd.Series:
    return pd.Series([level(v) for v in values.to_numpy(dtype=object)], index=values.index, dtype=object)


def column_distances(real: pd.DataFrame, synthetic: pd.DataFrame, discrete: list[str]) -> dict[str, dict]:
    """Per column: the KS statistic (numbers, dates) or the total variation distance (categories; the missing
    level counted), 0 = identical, 1 = disjoint; and the missing share in each table."""
    out = {}
    for name in real.columns:
        entry: dict[str, Any] = {}
        if name in discrete:
            p = _levels(real[name]).value_counts(normalize=True)
            q = _levels(synthetic[name]).value_counts(normalize=True)
            entry["metric"], entry["distance"] = "total_variation", 0.5 * float(p.sub(q, fill_value=0).abs().sum())
            entry["missing_real"] = float(p.get(MISSING, 0.0))
            entry["missing_synthetic"] = float(q.get(MISSING, 0.0))
        else:
            a, b = real[name].astype(float), synthetic[name].astype(float)
            distance = ks_2samp(a.dropna(), b.dropna()).statistic if a.notna().any() and b.notna().any() else 1.0
            entry["metric"], entry["distance"] = "ks", float(distance)
            entry["missing_real"], entry["missing_synthetic"] = float(a.isna().mean()), float(b.isna().mean())
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}
    return out


def _correlated(frame: pd.DataFrame, discrete: list[str], reference: pd.DataFrame) -> pd.DataFrame:
    """Numbers as they are, two-level categories as 0/1 (the real table's first level is 0); others left out."""
    out = {}
    for name in frame.columns:
        if name not in discrete:
            out[name] = frame[name].astype(float)
            continue
        levels = sorted(_levels(reference[name]).unique())
        if len(levels) == 2:
            out[name] = (_levels(frame[name]) == levels[1]).astype(float)
    return pd.DataFrame(out)


def correlation_difference(real: pd.DataFrame, synthetic: pd.DataFrame, discrete: list[str]) -> dict[str, Any]:
    """Spearman correlations of the real and the synthetic table and how far apart they are."""
    a = _correlated(real, discrete, real).corr(method="spearman").fillna(0.0)
    b = _correlated(synthetic, discrete, real).corr(method="spearman").reindex_like(a).fillna(0.0)
    diff = (a - b).abs()
    upper = diff.where(np.triu(np.ones(diff.shape, dtype=bool), k=1))
    stacked = upper.stack()
    worst = stacked.idxmax() if len(stacked) else ("", "")
    return {
        "method": "spearman",
        "columns": list(a.columns),
        "mean_abs_difference": round(float(stacked.mean()) if len(stacked) else 0.0, 4),
        "max_abs_difference": round(float(stacked.max()) if len(stacked) else 0.0, 4),
        "worst_pair": list(worst),
        "real": a.round(3).to_numpy().tolist(),
        "synthetic": b.round(3).to_numpy().tolist(),
    }


def _fit_score(train: pd.DataFrame, test: pd.DataFrame, table: RealTable, labels: list[str], seed: int) -> dict:
    target = table.target
    types = {c.name: "numeric" if c.continuous else "categorical" for c in table.modelled if c.name != target}
    encoder = TabularEncoder.fit(train, types, [target])
    if table.kind == "regression":
        kind, y, y_test = "regression", train[target].astype(float).to_numpy(), test[target].astype(float).to_numpy()
    else:
        index = {label: i for i, label in enumerate(labels)}
        kind = "binary" if len(labels) == 2 else "multiclass"
        y = train[target].map(index).to_numpy(dtype=float)
        y_test = test[target].map(index).to_numpy(dtype=float)
    keep = ~np.isnan(y)
    if len(np.unique(y[keep])) < (1 if kind == "regression" else 2):
        return {"error": "the training rows hold one class only"}
    model = lightgbm_default(kind, encoder.transform(train)[keep], y[keep], encoder.categorical_indices, seed)
    predicted = model(encoder.transform(test))
    if kind == "binary":
        metrics = binary_metrics(y_test.astype(int), predicted)
        return {k: round(metrics[k], 4) for k in ("roc_auc", "pr_auc", "ks", "brier") if k in metrics}
    if kind == "multiclass":
        from sklearn.metrics import accuracy_score, f1_score

        guess = predicted.argmax(1)
        return {
            "accuracy": round(float(accuracy_score(y_test, guess)), 4),
            "macro_f1": round(float(f1_score(y_test, guess, average="macro")), 4),
        }
    metrics = regression_metrics(y_test, predicted)
    return {k: round(metrics[k], 4) for k in ("r2", "rmse", "mae")}


def utility(table: RealTable, synthetic: pd.DataFrame, seed: int) -> dict[str, Any]:
    """TSTR vs TRTR on the real holdout; `gap` is TRTR - TSTR in the headline metric (smaller is better)."""
    labels = sorted(table.train[table.target].dropna().astype(str).unique()) if table.kind != "regression" else []
    headline = "r2" if table.kind == "regression" else ("roc_auc" if len(labels) == 2 else "macro_f1")
    real = _fit_score(table.train, table.holdout, table, labels, seed)
    synth = _fit_score(synthetic, table.holdout, table, labels, seed)
    out: dict[str, Any] = {
        "model": "LightGBM, library defaults (100 rounds)",
        "metric": headline,
        "test_rows": len(table.holdout),
        "train_on_real": {"rows": len(table.train), **real},
        "train_on_synthetic": {"rows": len(synthetic), **synth},
    }
    if headline in real and headline in synth:
        out["gap"] = round(real[headline] - synth[headline], 4)
    return out
