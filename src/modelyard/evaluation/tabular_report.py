"""Report sections for models over tables: the numbers a risk team reads (ROC-AUC, PR-AUC, KS, Gini, Brier beside
the scorecard and LightGBM's defaults), ROC/PR and calibration curves, the decision threshold, group gaps for
protected columns, TreeSHAP importance, the scorecard's points table, and what the data check found per column."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.evaluation import plots
from modelyard.evaluation.sections import Figure, ReportContext, Section, Table, Text, fmt, provides

RISK = ("roc_auc", "pr_auc", "ks", "gini", "brier", "precision", "recall", "accuracy", "macro_f1")
REGRESSION = ("rmse", "mae", "mape", "r2", "interval_coverage", "interval_width")
POINTS_ROWS = 60
IMPORTANCE_ROWS = 15
SHAP_ROWS = 2000


def _is_tabular(model: Any) -> bool:
    from modelyard.learners.tabular import TabularLearner

    return isinstance(model.learner, TabularLearner)


def _score(candidate: dict[str, Any]) -> str:
    value = candidate.get("validation", candidate.get("skipped", ""))
    return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) if isinstance(value, dict) else fmt(value)


def _comparison(context: ReportContext, names: tuple[str, ...]) -> Section:
    metrics = context.metrics
    rows = [["model (test)", *[fmt(metrics.get("test", {}).get(n)) for n in names]]]
    for baseline, scores in metrics.get("baselines", {}).items():
        rows.append([f"{baseline} (test)", *[fmt(scores.get("test", {}).get(n)) for n in names]])
    blocks: list[Any] = [Table(["", *names], rows, "the model beside its baselines, on the same test split")]
    candidates = context.model.learner.spec.candidates
    if candidates:
        table = [
            [c["backbone"], fmt(c.get("seconds")), _score(c), str(c.get("weights", c.get("note", "")))]
            for c in candidates
        ]
        blocks.append(Table(["candidate", "seconds", "validation", "note"], table, "what backbone auto tried"))
    weights = context.model.learner.spec.weights
    blocks.append(Text(f"kept: {', '.join(f'{k} x {v:g}' for k, v in weights.items())}", tone="note"))
    return Section("tabular-metrics", "Risk metrics", blocks, "ranking, calibration and errors against baselines")


def _curves(y: np.ndarray, p: np.ndarray) -> Section:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    from modelyard.metrics.risk import calibration_curve

    cal = calibration_curve(y, p)
    blocks = [
        Figure(plots.curves([("model", fpr, tpr)], "false positive rate", "true positive rate", True), "ROC curve"),
        Figure(plots.curves([("model", recall, precision)], "recall", "precision", False), "precision-recall curve"),
        Figure(
            plots.curves(
                [("model", np.array(cal["predicted"]), np.array(cal["observed"]))], "predicted", "observed", True
            ),
            "calibration: mean predicted probability vs observed default rate per decile of the score",
        ),
    ]
    return Section("tabular-curves", "Curves (test)", blocks, "ROC, precision-recall, calibration")


def _threshold(context: ReportContext) -> Section:
    test = context.metrics.get("test", {})
    spec = context.model.learner.spec
    blocks: list[Any] = [Text(f"threshold {spec.threshold['threshold']:.4g}: {spec.threshold['rule']}")]
    blocks.append(Text(f"probability calibration: {spec.calibration['method']} (fitted on validation)", tone="note"))
    if "confusion" in test:
        c = test["confusion"]
        rows = [["actual positive", c["tp"], c["fn"]], ["actual negative", c["fp"], c["tn"]]]
        blocks.append(Table(["", "flagged", "passed"], rows, "test decisions at the threshold"))
    for column, found in test.get("groups", {}).items():
        rate = "selection_rate" if "selection_rate_gap" in found else "positive_rate"  # older bundles' name for it
        rows = [[g, v["rows"], fmt(v[rate]), fmt(v["tpr"]), fmt(v["fpr"])] for g, v in found["groups"].items()]
        rows.append(["gap", "", fmt(found[f"{rate}_gap"]), fmt(found["tpr_gap"]), fmt(found["fpr_gap"])])
        blocks.append(
            Table([column, "rows", "flagged share", "TPR", "FPR"], rows, f"decisions per {column} group (test)")
        )
    return Section("tabular-threshold", "Decisions", blocks, "the threshold, its confusion counts, group gaps")


def _group_table(column: str, found: dict[str, Any], labels: list[str]) -> Table:
    """A multiclass or regression model's test answers per value of a protected column, and the largest gaps."""
    if "mae_gap" in found:
        rows = [[g, v["rows"], fmt(v["mae"]), fmt(v["mean_target"]), fmt(v["mean_prediction"])] for g, v in
                found["groups"].items()]  # fmt: skip
        rows.append(["gap", "", fmt(found["mae_gap"]), "", fmt(found["mean_prediction_gap"])])
        header = [column, "rows", "MAE", "mean target", "mean prediction"]
        return Table(header, rows, f"errors per {column} group (test)")
    rows = [
        [g, v["rows"], fmt(v["accuracy"]), *(f"{fmt(v['selection_rate'][k])} / {fmt(v['recall'][k])}" for k in labels)]
        for g, v in found["groups"].items()
    ]
    rows.append(["gap", "", fmt(found["accuracy_gap"]), *[""] * len(labels)])
    caption = (
        f"decisions per {column} group (test): per class, the share decided as it / its recall; largest gaps "
        f"over classes: selection rate {fmt(found['selection_rate_gap'])}, recall {fmt(found['recall_gap'])}"
    )
    return Table([column, "rows", "accuracy", *labels], rows, caption)


def _groups(context: ReportContext) -> Section | None:
    found = context.metrics.get("test", {}).get("groups")
    if not found:
        return None
    labels = context.model.learner.spec.labels
    tables = [_group_table(column, groups, labels) for column, groups in found.items()]
    return Section("tabular-groups", "Groups", list(tables), "test answers per protected group, and the gaps")


def _importance(context: ReportContext, frame: Any) -> Section | None:
    learner = context.model.learner
    if learner.booster is None or learner.spec.kind == "multiclass":
        return None
    from modelyard.learners.tabular_gbdt import contributions

    x = learner.spec.encoder.transform(frame.iloc[:SHAP_ROWS])
    contrib = np.abs(contributions(learner.booster, x, learner.spec.kind, 2, 1)[:, :-1]).mean(0)
    order = np.argsort(-contrib)[:IMPORTANCE_ROWS]
    names = learner.spec.encoder.feature_names
    rows = [[names[i], fmt(float(contrib[i]))] for i in order]
    return Section("tabular-importance", "Feature importance", [Table(["feature", "mean |TreeSHAP|"], rows)], "")


def _data_columns(context: ReportContext) -> Section:
    report = context.data_report
    rows = [
        [c, i["type"], fmt(i["missing"]), fmt(i.get("distinct", "")), ", ".join(i.get("rare_categories", [])[:5])]
        for c, i in report.get("columns", {}).items()
    ]
    blocks: list[Any] = [Table(["column", "type", "missing", "distinct", "rare categories"], rows, "inferred types")]
    for column, why in report.get("dropped_columns", {}).items():
        blocks.append(Text(f"'{column}' not used: {why}", tone="note"))
    for column, score in report.get("leakage", {}).items():
        blocks.append(
            Text(f"possible target leakage: '{column}' alone scores {score} on held-out rows", tone="warning")
        )
    if "imbalance" in report:
        imb = report["imbalance"]
        blocks.append(Text(f"class imbalance {imb['ratio']:g}:1, counts {imb['counts']}", tone="note"))
    return Section("tabular-columns", "Columns", blocks, "types, missing values, rare categories, leakage")


def _points(context: ReportContext) -> Section | None:
    points = context.metrics.get("baselines", {}).get("scorecard", {}).get("points")
    if not points:
        return None
    rows = [[p["feature"], p["bin"], fmt(p["woe"]), fmt(p["points"])] for p in points[:POINTS_ROWS]]
    caption = "logistic scorecard on weight of evidence: 600 points at odds 50:1, 20 points to double the odds"
    return Section("tabular-scorecard", "Scorecard points", [Table(["feature", "bin", "WOE", "points"], rows, caption)])


@provides("tabular", _is_tabular, exclusive=True)
def tabular_sections(context: ReportContext) -> list[Section]:
    learner = context.model.learner
    test = context.prepared.splits.get("test") if context.prepared is not None else None
    kind = learner.spec.kind
    sections = [_comparison(context, REGRESSION if kind == "regression" else RISK)]
    if test is not None and len(test):
        context.sample_inputs = test.drop(columns=[learner.spec.target]).iloc[:64].to_dict("records")
        if kind == "binary":
            sections.append(_curves(learner.targets(test), learner.scores(test)[:, 1]))
        found = _importance(context, test)
        if found is not None:
            sections.append(found)
    if kind == "binary":
        sections.append(_threshold(context))
    elif (groups := _groups(context)) is not None:
        sections.append(groups)
    sections.append(_data_columns(context))
    points = _points(context)
    return [*sections, points] if points else sections
