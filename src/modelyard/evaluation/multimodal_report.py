"""Report sections for image-and-text classifiers: image only vs text only vs fusion on the same rows, where the
fusion helps or hurts, then the usual per-class, confusion, curve and calibration sections of the fusion head."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.evaluation.classification_report import _calibration, _confusion, _curve_section, _per_class
from modelyard.evaluation.sections import ReportContext, Section, Table, Text, fmt, provides

HEADS = ("image_only", "text_only", "fusion")


def _is_multimodal(model: Any) -> bool:
    return hasattr(model.learner, "modality_probabilities") and bool(model.labels)


def _comparison(metrics: dict[str, Any]) -> Table:
    rows = [
        [
            head,
            *(
                fmt(metrics.get(split, {}).get("modalities", {}).get(head, {}).get(m))
                for split in ("validation", "test")
                for m in ("accuracy", "macro_f1")
            ),
        ]
        for head in HEADS
    ]
    columns = ["head", "validation accuracy", "validation macro F1", "test accuracy", "test macro F1"]
    return Table(columns, rows, "the three heads were trained in one run and are scored on the same rows")


def _agreement(y: np.ndarray, preds: dict[str, np.ndarray]) -> Table:
    """Test rows by which single modality got them right, and how often the fusion did."""
    image_ok, text_ok, fused_ok = (preds[h] == y for h in HEADS)
    groups = [
        ("both right", image_ok & text_ok),
        ("image right, text wrong", image_ok & ~text_ok),
        ("text right, image wrong", ~image_ok & text_ok),
        ("both wrong", ~image_ok & ~text_ok),
    ]
    rows = [[name, fmt(int(mask.sum())), fmt(int((mask & fused_ok).sum()))] for name, mask in groups]
    return Table(["single-modality heads", "test rows", "fusion right"], rows, "where the fusion gains and loses")


@provides("multimodal", _is_multimodal, exclusive=True)
def multimodal_sections(context: ReportContext) -> list[Section]:
    """Score the test rows with every head again and build the comparison and the fusion head's sections."""
    blocks: list[Any] = [_comparison(context.metrics)]
    test = context.prepared.splits.get("test") if context.prepared is not None else None
    if test is None or test.empty:
        blocks.append(Text("the test split is empty: no per-example analysis", tone="warning"))
        return [Section("modalities", "Image vs text vs fusion", blocks)]
    labels = list(context.model.labels)
    index = {label: i for i, label in enumerate(labels)}
    known = test[test["label"].isin(index)]
    inputs = [{"image": p, "text": t} for p, t in zip(known["path"], known["text"], strict=True)]
    probs = context.model.learner.modality_probabilities(inputs)
    y = known["label"].map(index).to_numpy()
    preds = {h: probs[h].argmax(1) for h in HEADS}
    blocks.append(_agreement(y, preds))
    context.sample_inputs = inputs[:64]
    comparison = Section("modalities", "Image vs text vs fusion", blocks, "what each modality adds")
    fused = probs["fusion"]
    return [
        comparison,
        _per_class(y, preds["fusion"], labels),
        _confusion(y, preds["fusion"], labels),
        _curve_section(y, fused),
        _calibration(y, fused),
    ]
