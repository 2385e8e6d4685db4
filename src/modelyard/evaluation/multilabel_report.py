"""Report sections for multi-label classifiers: per-label precision, recall and F1 beside each label's tuned
threshold, how many labels the model answers per text against the truth, and the test texts it got most wrong."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.evaluation.sections import ReportContext, Section, Table, Text, fmt, provides

LOW_F1 = 0.5
MISTAKES = 10
TEXT_CHARS = 300


def _is_multilabel(model: Any) -> bool:
    from modelyard.learners.multilabel import MultiLabelTextLearner
    from modelyard.learners.multilabel_tfidf import TfidfOvrLearner

    return isinstance(model.learner, MultiLabelTextLearner | TfidfOvrLearner)


def _per_label(metrics: dict[str, Any], decision: Any) -> Section:
    per_label = metrics.get("per_label", {})
    thresholds = dict(zip(decision.labels, decision.thresholds.tolist(), strict=True))
    rows = sorted(per_label.items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    low = [name for name, m in rows if m["support"] and m["f1"] < LOW_F1]
    tuning = decision.tuning
    blocks: list[Any] = [
        Text(
            f"{len(low)} of {len(per_label)} labels have F1 below {LOW_F1} on the test split"
            + (f": {', '.join(low[:10])}{' ...' if len(low) > 10 else ''}." if low else ".")
            + f" Thresholds: {tuning.get('method', '')}; {tuning.get('tuned_labels', 0)} labels have their own, "
            f"the rest share {fmt(tuning.get('shared'))} (fewer than {tuning.get('min_positives', '?')} "
            "validation examples).",
            tone="warning" if low else "note",
        ),
        Table(
            ["label", "precision", "recall", "F1", "support", "threshold"],
            [
                [
                    name,
                    fmt(m["precision"]),
                    fmt(m["recall"]),
                    fmt(m["f1"]),
                    fmt(m["support"]),
                    fmt(thresholds.get(name)),
                ]
                for name, m in rows
            ],
            "weakest labels first; a label is predicted when its score reaches its threshold",
        ),
    ]
    return Section("per-label", "Per-label results", blocks, "precision, recall, F1 and threshold of every label")


def _answers(metrics: dict[str, Any], decision: Any) -> Section:
    rows = [
        ["labels per text (truth)", fmt(metrics.get("true_labels_per_row"))],
        ["labels per text (model)", fmt(metrics.get("labels_per_row"))],
        ["subset accuracy (whole set right)", fmt(metrics.get("subset_accuracy"))],
        ["Hamming loss (share of wrong label decisions)", fmt(metrics.get("hamming_loss"))],
        ["samples F1 (mean F1 of each text's set)", fmt(metrics.get("samples_f1"))],
        ["an empty answer becomes the best label", str(decision.at_least_one)],
    ]
    return Section("label-sets", "Label sets", [Table(["", "test"], rows)], "how whole answers compare")


def _mistakes(texts: list[str], y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Section:
    wrong = (y != pred).sum(1)
    order = np.argsort(-wrong, kind="stable")[:MISTAKES]
    rows = [
        [
            texts[i] if len(texts[i]) <= TEXT_CHARS else texts[i][: TEXT_CHARS - 3] + "...",
            ", ".join(labels[j] for j in np.flatnonzero(y[i])) or "(none)",
            ", ".join(labels[j] for j in np.flatnonzero(pred[i])) or "(none)",
            fmt(int(wrong[i])),
        ]
        for i in order
        if wrong[i]
    ]
    block: Any = (
        Table(["text", "true labels", "predicted", "wrong decisions"], rows, "most wrong label decisions first")
        if rows
        else Text("every test text got exactly its labels")
    )
    return Section("mistakes", "Largest mistakes", [block], "texts whose predicted set is furthest from the truth")


@provides("multilabel", _is_multilabel, exclusive=True)
def multilabel_sections(context: ReportContext) -> list[Section]:
    """Score the test split again at the bundle's thresholds and build the sections from those answers."""
    from modelyard.metrics.multilabel import decide, label_matrix

    learner = context.model.learner
    decision = learner.decision
    test = context.prepared.splits.get("test") if context.prepared is not None else None
    if test is None or not len(test):
        return [Section("multilabel", "Multi-label", [Text("the test split is empty: no analysis", tone="warning")])]
    texts = test["text"].tolist()
    y = label_matrix(test["labels"].tolist(), decision.labels)
    scores = learner.predict_proba(texts)
    pred = decide(scores, decision.thresholds, decision.at_least_one)
    context.sample_inputs = texts[:64]
    metrics = context.metrics.get("test") or decision.score(y, scores)
    return [_per_label(metrics, decision), _answers(metrics, decision), _mistakes(texts, y, pred, decision.labels)]
