"""Report sections for classifiers (any model with class probabilities): per-class results, confusion,
precision-recall and ROC curves, calibration, the most confident mistakes and explained examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from modelyard.data.images import EXTENSIONS as IMAGE_EXTENSIONS
from modelyard.evaluation import plots
from modelyard.evaluation.explain import QUICK_SECONDS, can_explain, explain
from modelyard.evaluation.redaction import report_redactor
from modelyard.evaluation.sections import Figure, ReportContext, Section, Table, Text, Tokens, fmt, provides
from modelyard.metrics.stats import bootstrap_intervals, reliability

GRID = np.linspace(0.0, 1.0, 201)
FULL_MATRIX_LIMIT = 20
TOP_PAIRS = 15
MISTAKES = 10
EXPLAINED = 3
LOW_F1 = 0.5


def split_inputs(frame: Any) -> tuple[list[Any] | None, bool]:
    """The model inputs of a prepared split, and whether they are images: its text column, or image paths."""
    columns = getattr(frame, "columns", ())
    if "text" in columns:
        return frame["text"].tolist(), False
    if "path" in columns:  # files: images get thumbnails, other files (audio) are shown by name
        paths = frame["path"].tolist()
        return paths, all(Path(str(p)).suffix.lower() in IMAGE_EXTENSIONS for p in paths)
    return None, False


def _shown(item: Any, image: bool) -> Any:
    if image:
        return Figure(plots.thumbnail(item), Path(str(item)).name)
    text = str(item)
    return text if len(text) <= 300 else text[:297] + "..."


def _curves(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Micro- and macro-averaged one-vs-rest ROC and precision-recall curves over the classes present."""
    onehot = np.eye(probs.shape[1], dtype=np.int8)[y]
    present = [c for c in range(probs.shape[1]) if 0 < onehot[:, c].sum() < len(y)]
    fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
    prec, rec, _ = precision_recall_curve(onehot.ravel(), probs.ravel())
    roc_macro, pr_macro, aucs = np.zeros_like(GRID), np.zeros_like(GRID), []
    for c in present:
        f, t, _ = roc_curve(onehot[:, c], probs[:, c])
        roc_macro += np.interp(GRID, f, t)
        aucs.append(auc(f, t))
        p, r, _ = precision_recall_curve(onehot[:, c], probs[:, c])
        best = np.maximum.accumulate(p)  # r is decreasing: best precision at recall >= r
        pr_macro += np.interp(GRID, r[::-1], best[::-1])
    n = max(1, len(present))
    return {
        "roc": [("micro", fpr, tpr), ("macro", GRID, roc_macro / n)],
        "pr": [("micro", rec, prec), ("macro", GRID, pr_macro / n)],
        "roc_auc": {"micro": float(auc(fpr, tpr)), "macro": float(np.mean(aucs)) if aucs else float("nan")},
        "average_precision": {
            "micro": float(average_precision_score(onehot.ravel(), probs.ravel())),
            "macro": float(np.mean([average_precision_score(onehot[:, c], probs[:, c]) for c in present]))
            if present
            else float("nan"),
        },
    }


def _per_class(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Section:
    from modelyard.metrics.classification import classification_metrics

    per_class = classification_metrics(y.tolist(), pred.tolist(), labels)["per_class"]
    rows = sorted(per_class.items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    low = [name for name, m in rows if m["support"] and m["f1"] < LOW_F1]
    blocks: list[Any] = [
        Text(
            f"{len(low)} of {len(labels)} classes have F1 below {LOW_F1}"
            + (f": {', '.join(low[:10])}{' ...' if len(low) > 10 else ''}." if low else "."),
            tone="warning" if low else "note",
        )
    ]
    blocks.append(
        Table(
            ["class", "precision", "recall", "F1", "support"],
            [[name, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), fmt(m["support"])] for name, m in rows],
            "weakest classes first",
        )
    )
    return Section(
        "per-class", "Per-class results", blocks, "precision, recall and F1 of every class on the test split"
    )


def _confusion(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Section:
    k = len(labels)
    matrix = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    support = np.maximum(matrix.sum(1), 1)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off), strict=True)]
    pairs.sort(reverse=True)
    rows = [[labels[i], labels[j], fmt(n), f"{n / support[i]:.1%}"] for n, i, j in pairs[:TOP_PAIRS]]
    blocks: list[Any] = [
        Table(
            ["true", "predicted as", "examples", "share of the true class"],
            rows,
            "the most frequent confusions",
        )
        if rows
        else Text("no confusions on the test split")
    ]
    caption = "rows: true class, columns: predicted class, colour: share of the true class"
    if k > FULL_MATRIX_LIMIT:
        caption += f" ({k} classes: read the exact counts in the table above)"
    blocks.append(Figure(plots.confusion_heatmap(matrix, labels), caption))
    return Section("confusion", "Confusion matrix", blocks, "which classes the model mixes up")


def _curve_section(y: np.ndarray, probs: np.ndarray) -> Section:
    c = _curves(y, probs)
    roc, ap = c["roc_auc"], c["average_precision"]
    return Section(
        "curves",
        "Precision-recall and ROC curves",
        [
            Figure(
                plots.curves(c["pr"], "recall", "precision", diagonal=False),
                f"precision-recall, one-vs-rest; average precision micro {ap['micro']:.3f}, macro {ap['macro']:.3f}",
            ),
            Figure(
                plots.curves(c["roc"], "false positive rate", "true positive rate", diagonal=True),
                f"ROC, one-vs-rest; AUC micro {roc['micro']:.3f}, macro {roc['macro']:.3f}",
            ),
        ],
        "how precision trades against recall as the decision threshold moves",
    )


def _calibration(y: np.ndarray, probs: np.ndarray) -> Section:
    confidence = probs.max(1)
    rel = reliability(confidence, probs.argmax(1) == y)
    gap = float(np.mean(confidence) - np.mean(probs.argmax(1) == y))
    verdict = "over-confident" if gap > 0.02 else "under-confident" if gap < -0.02 else "well calibrated on average"
    return Section(
        "calibration",
        "Calibration",
        [
            Text(
                f"Expected calibration error {rel['ece']:.3f} (15 equal-width bins). Mean confidence "
                f"{np.mean(confidence):.3f} against accuracy {np.mean(probs.argmax(1) == y):.3f}: {verdict}."
            ),
            Figure(
                plots.reliability_diagram(rel),
                "reliability diagram: bars on the diagonal mean the scores can be read as probabilities",
            ),
        ],
        "whether a score of 0.9 means right 9 times out of 10",
    )


def _mistakes(inputs: list[Any], images: bool, y: np.ndarray, probs: np.ndarray, labels: list[str]) -> Section:
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:MISTAKES]
    rows = [
        [
            _shown(inputs[i], images),
            labels[y[i]],
            labels[pred[i]],
            f"{probs[i, pred[i]]:.3f}",
            f"{probs[i, y[i]]:.3f}",
        ]
        for i in order
    ]
    block = (
        Table(
            ["input", "true", "predicted", "confidence", "score of the true class"],
            rows,
            f"{len(wrong)} of {len(y)} test examples are misclassified; the most confident mistakes first",
        )
        if rows
        else Text("no misclassified test examples")
    )
    return Section(
        "mistakes",
        "Most confident mistakes",
        [block],
        "where the model is sure and wrong: often label noise or overlapping classes",
    )


def _explanations(context: ReportContext, inputs: list[Any], images: bool, y: np.ndarray, probs: np.ndarray) -> Section:
    pred = probs.argmax(1)
    confidence = probs[np.arange(len(y)), pred]
    right = np.flatnonzero(pred == y)
    wrong = np.flatnonzero(pred != y)
    chosen = [
        *right[np.argsort(-confidence[right])][: EXPLAINED - 1],
        *wrong[np.argsort(-confidence[wrong])][:1],
    ]
    blocks: list[Any] = []
    method = ""
    redactor = None if images else report_redactor(context.model)
    for i in chosen[:EXPLAINED]:
        # the tokens are shown: a text is explained as the report may show it, personal data replaced
        item = redactor.redact(str(inputs[i])) if redactor else inputs[i]
        result = explain(context.model, item, seconds=QUICK_SECONDS)  # a few examples: no retries
        method = result["method"]
        verdict = "correct" if pred[i] == y[i] else f"wrong, true: {context.model.labels[y[i]]}"
        title = f"predicted {result['label']} ({result['score']:.2f}; {verdict})"
        if result.get("converged") is False:  # integrated gradients cut short: the map is indicative only
            title += f"; approximate, the attributions miss the output change by {result['relative_delta']:.0%}"
        if "heatmap" in result:
            blocks.append(Figure("data:image/png;base64," + result["heatmap"], title))
        else:
            blocks.append(Tokens(title, result["tokens"], result["attributions"]))
    blocks.insert(
        0,
        Text(
            f"Method: {method}. "
            + (
                "Bright regions carry the evidence for the predicted label."
                if images
                else "Red tokens push towards the predicted label, blue ones away from it."
            )
        ),
    )
    summary = "which image regions the decisions rest on" if images else "which words the decisions rest on"
    return Section("explanations", "Explained examples", blocks, summary)


def _has_probabilities(model: Any) -> bool:
    return hasattr(model.learner, "predict_proba") and bool(model.labels)


@provides("classification", _has_probabilities)
def classification_sections(context: ReportContext) -> list[Section]:
    """Predict the test split again and build every classification section from those per-example results."""
    model = context.model
    test = context.prepared.splits.get("test") if context.prepared is not None else None
    inputs, images = split_inputs(test) if test is not None else (None, False)
    if not inputs:
        return [
            Section(
                "classification",
                "Classification",
                [Text("the test split is empty or unreadable: no per-example analysis", tone="warning")],
            )
        ]
    labels = list(model.labels)
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[label] for label in test["label"]], dtype=np.int64)
    probs = np.asarray(model.learner.predict_proba(inputs), dtype=np.float64)
    pred = probs.argmax(1)
    context.intervals.update(bootstrap_intervals(y, pred, len(labels)))
    context.sample_inputs = inputs[:64]
    sections = [
        _per_class(y, pred, labels),
        _confusion(y, pred, labels),
        _curve_section(y, probs),
        _calibration(y, probs),
        _mistakes(inputs, images, y, probs, labels),
    ]
    if can_explain(model):
        sections.append(_explanations(context, inputs, images, y, probs))
    return sections
