"""The baselines beside every tabular run: a WOE logistic scorecard (binary), one-hot logistic regression
(multiclass) or ridge regression, and LightGBM with its default settings.

The scorecard bins each feature (deciles for numbers, codes for categories, missing on its own), replaces a
value by its bin's weight of evidence ln(share of goods / share of bads), fits a logistic regression on those,
and scales it into points (600 points at odds 50:1, 20 points to double the odds), the classic credit form.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from modelyard.learners.tabular_encoding import TabularEncoder
from modelyard.learners.tabular_export import _bins, bin_index

BASE_POINTS, BASE_ODDS, PDO = 600.0, 50.0, 20.0
HEADLINE = ("roc_auc", "pr_auc", "ks", "gini", "brier", "accuracy", "macro_f1", "rmse", "mae", "mape", "r2")


def _woe_tables(x: np.ndarray, y: np.ndarray, encoder: TabularEncoder) -> list[dict[str, Any]]:
    tables = []
    goods, bads = (y == 0).sum(), (y == 1).sum()
    for i, feature in enumerate(encoder.features):
        edges, index = _bins(x[:, i], feature["cardinality"])
        size = feature["cardinality"] + 1 if edges is None else len(edges) + 2
        bad = np.bincount(index, weights=y, minlength=size)
        good = np.bincount(index, weights=1 - y, minlength=size)
        woe = np.log(((good + 0.5) / (goods + 0.5)) / ((bad + 0.5) / (bads + 0.5)))
        tables.append({"feature": feature["name"], "edges": edges, "card": feature["cardinality"], "woe": woe})
    return tables


def _woe(x: np.ndarray, tables: list[dict[str, Any]]) -> np.ndarray:
    out = np.zeros(x.shape, dtype=float)
    for i, t in enumerate(tables):
        index = np.clip(bin_index(x[:, i], t["edges"], t["card"]), 0, len(t["woe"]) - 1)
        out[:, i] = t["woe"][index]
    return out


def _bin_names(t: dict[str, Any], encoder_categories: list[str] | None) -> list[str]:
    if t["edges"] is None:
        names = [*(encoder_categories or []), "other"]
        return [*names[: len(t["woe"]) - 1], "missing"][: len(t["woe"])]
    edges = t["edges"]
    names = [f"<= {edges[0]:g}"] if edges else ["all"]
    names += [f"({a:g}, {b:g}]" for a, b in pairwise(edges)]
    names += [f"> {edges[-1]:g}"] if edges else []
    return [*names, "missing"][: len(t["woe"])]


def scorecard(x: np.ndarray, y: np.ndarray, encoder: TabularEncoder) -> tuple[Any, list[dict], list[dict]]:
    """(predict_proba function, WOE tables, points table rows: feature, bin, woe, points)."""
    from sklearn.linear_model import LogisticRegression

    tables = _woe_tables(x, y, encoder)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(_woe(x, tables), y)
    factor = PDO / np.log(2)
    offset = BASE_POINTS - factor * np.log(BASE_ODDS)
    n = len(tables)
    rows = []
    for t, coef in zip(tables, model.coef_[0], strict=True):
        cats = encoder.categories.get(t["feature"])
        for name, woe in zip(_bin_names(t, cats), t["woe"], strict=True):
            # log-odds of "good" = -(b0 + sum b_j woe_j); score = offset + factor * that, shared evenly
            points = offset / n + factor * (-(coef * woe) - model.intercept_[0] / n)
            entry = {"feature": t["feature"], "bin": name, "woe": round(float(woe), 4)}
            rows.append({**entry, "points": round(float(points), 1)})

    def proba(xx: np.ndarray) -> np.ndarray:
        return model.predict_proba(_woe(xx, tables))[:, 1]

    return proba, tables, rows


def _imputed(x: np.ndarray, encoder: TabularEncoder) -> np.ndarray:
    """One-hot codes and median-filled, standardised numbers for the linear baselines."""
    cols = []
    for i, feature in enumerate(encoder.features):
        v = x[:, i]
        if feature["cardinality"]:
            codes = np.where(np.isnan(v), feature["cardinality"], v).astype(int)
            cols.append(np.eye(feature["cardinality"] + 1)[codes])
        else:
            fill = np.nanmedian(v) if (~np.isnan(v)).any() else 0.0
            cols.append(np.stack([np.nan_to_num(v, nan=fill), np.isnan(v)], 1))
    return np.concatenate(cols, axis=1)


def linear_baseline(kind: str, x: np.ndarray, y: np.ndarray, encoder: TabularEncoder):
    """A predict function: one-hot logistic regression (multiclass) or ridge regression, standardised inputs."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), Ridge() if kind == "regression" else LogisticRegression(max_iter=2000))
    model.fit(_imputed(x, encoder), y)
    if kind == "regression":
        return lambda xx: model.predict(_imputed(xx, encoder))
    return lambda xx: model.predict_proba(_imputed(xx, encoder))


def lightgbm_default(kind: str, x: np.ndarray, y: np.ndarray, categorical: list[int], seed: int):
    """LightGBM at its library defaults (100 rounds, no early stopping), the reference the targets name."""
    import lightgbm as lgb

    from modelyard.learners.tabular_gbdt import objective

    classes = int(y.max()) + 1 if kind != "regression" else 0
    params = {**objective(kind, classes), "verbose": -1, "seed": seed, "num_threads": 1}  # see tabular_gbdt
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=categorical or "auto"), 100)
    return lambda xx: booster.predict(xx)
