"""Reason codes of a tabular learner: TreeSHAP values of its LightGBM member summed per column, the top columns
pushing the answer up and down (what a credit decision letter cites)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from modelyard.errors import UserError
from modelyard.learners import tabular_gbdt as gbdt

if TYPE_CHECKING:
    from modelyard.learners.tabular import TabularLearner

REASONS = 5


def reason_codes(learner: TabularLearner, row: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    spec = learner.spec
    if learner.booster is None:
        raise UserError("reason codes need the LightGBM member; this model has none", "train backbone lightgbm")
    spec.encoder.check_row(row)
    frame = pd.DataFrame([row])
    scores = learner.scores(frame)[0]
    target = 0
    if spec.kind != "regression":
        if label is not None and label not in spec.labels:
            raise UserError(f"unknown label {label!r}", f"choose one of {spec.labels}")
        target = spec.labels.index(label) if label is not None else int(learner.decide(scores[None])[0])
    x = spec.encoder.transform(frame)
    contrib = gbdt.contributions(learner.booster, x, spec.kind, len(spec.labels or []), target)[0]
    if spec.kind == "binary" and target == 0:
        contrib = -contrib
    per_column: dict[str, float] = {}
    for feature, value in zip(spec.encoder.features, contrib[:-1], strict=True):
        per_column[feature["column"]] = per_column.get(feature["column"], 0.0) + float(value)
    ranked = sorted(per_column.items(), key=lambda kv: kv[1])
    scale = "log-odds" if spec.kind != "regression" else "target units"
    weight = spec.weights.get("lightgbm", 0.0)
    return {
        "label": spec.labels[target] if spec.labels else "value",
        "score": float(scores[target]) if spec.kind != "regression" else float(scores),
        "method": f"TreeSHAP (LightGBM pred_contrib, mean of fold models) in {scale}; GBDT weight {weight:g}",
        "features": list(per_column),
        "attributions": [round(v, 6) for v in per_column.values()],
        "reasons_up": [{"feature": k, "contribution": round(v, 6)} for k, v in ranked[::-1][:REASONS] if v > 0],
        "reasons_down": [{"feature": k, "contribution": round(v, 6)} for k, v in ranked[:REASONS] if v < 0],
        "output": float(contrib.sum()),
        "baseline_output": float(contrib[-1]),
    }
