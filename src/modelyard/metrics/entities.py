"""Entity-level precision, recall and F1 (seqeval, conlleval's reading of BIO): an entity counts only when its
type and both boundaries match exactly; per type, micro over all entities, macro over types."""

from __future__ import annotations

import warnings
from typing import Any


def entity_metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, Any]:
    """`entity_f1`/`entity_precision`/`entity_recall` (micro), `macro_f1` over types, `token_accuracy`, and
    `per_type` {type: precision, recall, f1, support} from per-sentence BIO word tags."""
    from seqeval.metrics import accuracy_score, classification_report

    tokens = sum(len(s) for s in gold)
    if not tokens:
        return {}
    with warnings.catch_warnings():  # seqeval warns on types with no predictions; they score 0, as reported
        warnings.simplefilter("ignore")
        table = classification_report(gold, predicted, output_dict=True, zero_division=0)
        accuracy = float(accuracy_score(gold, predicted))
    averages = {"micro avg", "macro avg", "weighted avg"}
    per_type = {
        kind: {
            "precision": round(float(row["precision"]), 4),
            "recall": round(float(row["recall"]), 4),
            "f1": round(float(row["f1-score"]), 4),
            "support": int(row["support"]),
        }
        for kind, row in sorted(table.items())
        if kind not in averages
    }
    micro = table.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    return {
        "entity_f1": round(float(micro["f1-score"]), 4),
        "entity_precision": round(float(micro["precision"]), 4),
        "entity_recall": round(float(micro["recall"]), 4),
        "macro_f1": round(sum(r["f1"] for r in per_type.values()) / len(per_type), 4) if per_type else 0.0,
        "token_accuracy": round(accuracy, 4),
        "entities": sum(r["support"] for r in per_type.values()),
        "sentences": len(gold),
        "per_type": per_type,
    }
