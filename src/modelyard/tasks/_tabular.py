"""What `tabular_classification` and `tabular_regression` share: config sections, reading and checking the
table, splits, building and loading the learner, baselines. Each task module only says its kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig, SplitConfig
from modelyard.data import tabular
from modelyard.data.categories import as_known_labels, category_text
from modelyard.data.readers import read_table, require_columns
from modelyard.data.splits import fingerprint, make_splits
from modelyard.errors import ConfigError, DataError
from modelyard.learners.tabular import TabularLearner, TabularSpec
from modelyard.learners.tabular_encoding import TabularEncoder
from modelyard.protocols import PreparedData
from modelyard.tasks._labels import drop_unseen_labels

TRUTHY = ("1", "1.0", "true", "yes", "y", "t", "bad", "default", "fraud", "positive")


class TabularSplitConfig(SplitConfig):
    by: str | None = Field(None, description="order rows by this date (or number) column: oldest train, newest test")


class TabularDataConfig(DataConfig):
    target_column: str = "target"
    split: TabularSplitConfig = Field(default_factory=TabularSplitConfig)
    column_types: dict[str, Literal["numeric", "categorical", "boolean", "date", "text"]] = Field(
        default_factory=dict, description="override the inferred type of a column"
    )
    drop_columns: list[str] = Field(default_factory=list, description="columns never used as features")
    positive_label: str | None = Field(
        None, description="binary: the class to score (default: 1/yes/true, else the minority)"
    )


class TabularModelConfig(ModelConfig):
    backbone: Literal["auto", "lightgbm", "catboost", "mlp"] = "auto"
    monotone: dict[str, Literal[1, -1]] = Field(default_factory=dict, description="column: +1 or -1 (LightGBM)")
    calibration: Literal["auto", "isotonic", "platt", "none"] = "auto"
    hidden_size: int = Field(128, ge=4, le=4096)
    layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.1, ge=0, lt=1)
    norm: Literal["batch", "layer"] = Field("batch", description="MLP normalisation; train.privacy needs layer")
    gbdt: dict[str, float | int | str] = Field(default_factory=dict, description="LightGBM parameters to override")
    catboost: dict[str, float | int | str] = Field(default_factory=dict, description="CatBoost parameters to override")
    candidates: list[Literal["lightgbm", "catboost", "mlp"]] = Field(
        default_factory=lambda: ["lightgbm", "mlp"], min_length=1, description="the model families `auto` tries"
    )
    bag_folds: int = Field(5, ge=1, le=10, description="GBDT fold models bagged on the training split (1: one)")


def _read(path: str, config: Config) -> pd.DataFrame:
    data: TabularDataConfig = config.data
    frame, read = read_table(path, data.format, data.max_rows)
    require_columns(frame, {"target_column": data.target_column}, path)
    _refuse_nested_columns(frame, path, data.drop_columns)
    target = frame[data.target_column]
    empty = target.isna() | (target.astype(str).str.strip() == "")
    frame = frame[~empty]
    frame.attrs["notes"] = [f"{path}: {int(empty.sum())} rows without a target dropped"] if empty.any() else []
    if read.skipped:
        frame.attrs["notes"].append(f"{path}: {read.skipped} malformed rows skipped (first: {read.problems[0]})")
    return frame


def _refuse_nested_columns(frame: pd.DataFrame, path: str, dropped: list[str]) -> None:
    """A Parquet struct, map or binary column holds no number, category, date or text: name it, don't crash."""
    for column in frame.columns:
        if column in dropped or frame[column].dtype != object:
            continue
        kinds = {type(v) for v in frame[column].dropna().head(1000)} & {dict, bytes, bytearray}
        if kinds:
            raise DataError(
                f"{path}: column '{column}' holds {min(k.__name__ for k in kinds)} values (a struct, map or binary "
                "column); a table's columns are numbers, categories, booleans, dates or text",
                f"leave it out with data.drop_columns: [{column}], or flatten it into plain columns",
            )


def _row_hashes(frame: pd.DataFrame) -> pd.Series:
    """One hash per row over every column; object cells by their repr (a Parquet struct column holds unhashable
    dicts, a binary one bytes that are not text)."""
    cells = frame.apply(lambda column: column if pd.api.types.is_numeric_dtype(column) else column.map(repr))
    return pd.util.hash_pandas_object(cells, index=False)


def _shared_rows(splits: dict[str, pd.DataFrame], data: TabularDataConfig) -> list[str]:
    """Warnings counting the validation and test rows (of the file given, or carved from train) equal to a training
    row in every column: their scores are not held out. Kept, not dropped: in a table of few, coarse columns two
    real cases can be equal (dropping them would change the class balance); a file written twice is the user's."""
    train, found = splits["train"], []
    columns, seen = list(train.columns), None  # the training rows are hashed once, when a split is compared
    for name in ("validation", "test"):
        other = splits[name]
        if other.empty or sorted(map(str, other.columns)) != sorted(map(str, columns)):
            continue
        seen = set(_row_hashes(train[columns])) if seen is None else seen
        shared = int(_row_hashes(other[columns]).isin(seen).sum())
        if shared:
            given = getattr(data, name)
            where = f"{given} ({name})" if given else f"{name} (carved from {data.train})"
            found.append(
                f"{where}: {shared} of {len(other)} rows equal a training row in every column, so their scores are "
                "not held out; if the file repeats rows by mistake (written twice), remove the repeats"
            )
    return found


def _labels(train: pd.Series, positive: str | None) -> list[str]:
    """Class names; for two classes [negative, positive], the positive one scored as `probability`."""
    values = train.map(category_text)  # 1, "1" and 1.0 are one class, as categories are
    labels = sorted(values.unique())
    if len(labels) != 2:
        return labels
    if positive is not None:
        positive = category_text(positive)
        if positive not in labels:
            raise ConfigError(f"data.positive_label {positive!r} is not a class; classes: {labels}")
        chosen = positive
    else:
        truthy = [label for label in labels if label.lower() in TRUTHY]
        chosen = truthy[0] if len(truthy) == 1 else values.value_counts().index[-1]
    return [next(label for label in labels if label != chosen), chosen]


def prepare(config: Config, kind: str) -> PreparedData:
    data: TabularDataConfig = config.data
    frames = {w: _read(getattr(data, w), config) for w in ("train", "validation", "test") if getattr(data, w)}
    warnings = [note for frame in frames.values() for note in frame.attrs.get("notes", [])]
    train, target = frames["train"], data.target_column
    if kind == "regression":
        for name, frame in frames.items():
            bad = tabular.to_numeric(frame[target]).isna()
            if bad.any():
                raise DataError(
                    f"{getattr(data, name)}: target '{target}' is not a finite number in {int(bad.sum())} rows"
                )
    if data.split.by:
        if "validation" in frames or "test" in frames:
            raise ConfigError("data.split.by orders one file by time: leave data.validation and data.test empty")
        splits, notes = tabular.time_splits(train, data.split.by, data.split.validation, data.split.test)
    else:
        stratify = target if kind == "classification" else None
        if stratify:
            train = train.assign(**{target: train[target].map(category_text)})
        splits, notes = make_splits(train, frames.get("validation"), frames.get("test"), data.split, stratify)
    warnings += _shared_rows(splits, data)
    types, dropped = tabular.infer_types(splits["train"], target, data.column_types, data.drop_columns)
    _check_monotone(config, types)
    for column in config.evaluation.groups:
        if column not in splits["train"].columns:
            raise ConfigError(f"evaluation.groups names '{column}', which the data does not have")
    report: dict[str, Any] = {
        "splits": {n: len(f) for n, f in splits.items()},
        "split_notes": notes,
        "sources": {name: str(getattr(data, name)) for name in frames},  # the model card's Data table
        "target": target,
        "columns": tabular.column_profile(splits["train"], types),
        "dropped_columns": dropped,
    }
    y = tabular.to_numeric(splits["train"][target]).to_numpy()
    if kind == "regression" and len(values := np.unique(y)) < 2:
        only = f"one value only ({values[0]:g})" if len(values) else "no values"
        raise DataError(f"{data.train}: target '{target}' has {only} in the training split: nothing to learn")
    if kind == "classification":
        labels = _labels(splits["train"][target], data.positive_label)
        if len(labels) < 2:
            raise DataError(f"{data.train}: target '{target}' has one class only ({labels})")
        _check_two_class_keys(config, labels)
        splits = {name: frame.assign(**{target: frame[target].map(category_text)}) for name, frame in splits.items()}
        drop_unseen_labels(splits, labels, data, warnings, column=target)
        y = splits["train"][target].map({label: i for i, label in enumerate(labels)}).to_numpy()
        report["classes"] = labels
        report["labels"] = {n: f[target].value_counts().to_dict() for n, f in splits.items()}
        report["imbalance"] = tabular.imbalance(splits["train"][target])
        if report["imbalance"]["ratio"] > 3:
            imb = report["imbalance"]
            better = "a cost-based threshold (evaluation.costs)" if len(labels) == 2 else "per-class recall"
            warnings.append(
                f"class imbalance {imb['ratio']:g}:1 (minority '{imb['minority']}' {imb['minority_share']:.1%}); "
                f"roc_auc, pr_auc and {better} say more than accuracy"
            )
    leak_kind = (
        "regression" if kind == "regression" else ("binary" if len(report.get("classes", [])) == 2 else "multiclass")
    )
    report["leakage"] = tabular.leakage(splits["train"], types, y, leak_kind)
    for column, score in report["leakage"].items():
        warnings.append(
            f"target leakage? '{column}' alone predicts '{target}' with score {score} on held-out rows; "
            "if it is only known after the outcome, add it to data.drop_columns"
        )
    for column, why in dropped.items():
        warnings.append(f"column '{column}' not used: {why}")
    for column, info in report["columns"].items():
        if info["missing"] > 0.3:
            warnings.append(f"column '{column}': {info['missing']:.0%} missing")
        if info.get("rare_count"):
            warnings.append(f"column '{column}': {info['rare_count']} rare categories share one 'other' code")
    report["column_types"] = {c: i["type"] for c, i in report["columns"].items()}
    columns = list(splits["train"].columns)
    prints = {n: fingerprint(f, columns) for n, f in splits.items()}
    return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)


def _check_two_class_keys(config: Config, labels: list[str]) -> None:
    """The keys that pick the positive class and its threshold, as the learner can honour them (checked by
    `validate`): one threshold rule at a time, and only for two classes (several are decided by the top score)."""
    evaluation = config.evaluation
    if evaluation.costs is not None and evaluation.target_recall is not None:
        raise ConfigError(
            "evaluation.costs and evaluation.target_recall both set the decision threshold; only one can",
            "keep evaluation.costs (minimum expected cost) or evaluation.target_recall (a recall to reach)",
        )
    if len(labels) > 2:
        given = {"evaluation.costs": evaluation.costs, "evaluation.target_recall": evaluation.target_recall,
                 "data.positive_label": config.data.positive_label}  # fmt: skip
        named = [key for key, value in given.items() if value is not None]
        if named:
            raise ConfigError(
                f"{', '.join(named)} apply to a two-class target; '{config.data.target_column}' has "
                f"{len(labels)} classes ({', '.join(labels[:10])}), each decided by its highest probability",
                f"remove {', '.join(named)}",
            )


def evaluation_rows(config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """`evaluate --data FILE`: the file's labelled rows scored as they are. The checks of what a model can learn
    from (two classes, a target that varies, the config's columns present) are `train`'s, not a scoring file's;
    labels are matched as categories are (1.0 is the class 1), and absent group columns are named, not required."""
    frame = _read(path, config)
    notes, target = list(frame.attrs.get("notes", [])), config.data.target_column
    if labels:
        frame = frame.assign(**{target: as_known_labels(frame[target].astype(str).str.strip(), labels)})
    else:
        bad = tabular.to_numeric(frame[target]).isna()
        if bad.any():
            notes.append(f"{path}: {int(bad.sum())} rows dropped: target '{target}' is not a finite number")
            frame = frame[~bad]
    absent = [column for column in config.evaluation.groups if column not in frame.columns]
    if absent:
        notes.append(f"{path}: no column {', '.join(absent)}: its group metrics (evaluation.groups) are left out")
    return frame, notes


def _check_monotone(config: Config, types: dict[str, str]) -> None:
    """`model.monotone` as LightGBM can honour it (checked by `validate`): only LightGBM takes constraints, so
    another named backbone would train without them; only numeric and boolean features can be constrained."""
    given = dict(config.model.monotone)
    if given and config.model.backbone not in ("auto", "lightgbm"):
        raise ConfigError(
            f"model.monotone constrains LightGBM only; backbone {config.model.backbone} would ignore it",
            "use backbone lightgbm (or auto, which then tries LightGBM alone) with monotone constraints",
        )
    for column in given:
        if types.get(column) not in ("numeric", "boolean"):
            raise ConfigError(
                f"model.monotone: '{column}' is {types.get(column, 'not a feature')}; "
                "constraints apply to numeric or boolean feature columns"
            )


def _monotone(config: Config, encoder: TabularEncoder) -> list[int]:
    given = dict(config.model.monotone)
    return [int(given.get(f["name"], 0)) for f in encoder.features]


def build(config: Config, data: PreparedData, kind: str) -> TabularLearner:
    report, target = data.report, config.data.target_column
    dropped = [*report["dropped_columns"], target]
    encoder = TabularEncoder.fit(data.splits["train"], report["column_types"], dropped)
    labels = report.get("classes")
    kind = "regression" if kind == "regression" else ("binary" if len(labels) == 2 else "multiclass")
    spec = TabularSpec(kind, target, labels, encoder, list(config.evaluation.groups))
    model = config.model
    options = {
        "time_limit_s": config.train.time_limit_s,
        "monotone": _monotone(config, encoder),
        "calibration": model.calibration,
        "evaluation": config.evaluation,
        "seed": config.train.seed,
        "gbdt_params": dict(model.gbdt),
        "catboost_params": dict(model.catboost),
        "candidates": list(model.candidates),
        "folds": model.bag_folds,
        "mlp": {"hidden_size": model.hidden_size, "layers": model.layers, "dropout": model.dropout, "norm": model.norm},
        "config": config,
    }
    why = {"auto": f"{', '.join(model.candidates)} within train.time_limit_s; the best or an ensemble on validation"}
    report["backbone"] = {"name": model.backbone, "why": why.get(model.backbone, "named in model.backbone")}
    return TabularLearner(spec, model.backbone, options)


def baselines(config: Config, data: PreparedData, kind: str) -> dict[str, dict[str, Any]]:
    """The WOE scorecard (binary; with its points table), or a linear model, and LightGBM's defaults."""
    from modelyard.learners import scorecard
    from modelyard.learners.tabular import main_score
    from modelyard.metrics.classification import classification_metrics
    from modelyard.metrics.risk import binary_metrics, regression_metrics

    learner = build(config, data, kind)
    encoder, spec = learner.spec.encoder, learner.spec
    x, y = encoder.transform(data.splits["train"]), learner.targets(data.splits["train"])
    evaluated = {
        n: (encoder.transform(data.splits[n]), learner.targets(data.splits[n])) for n in ("validation", "test")
    }

    def scored(predict, binary_scores: bool) -> dict[str, Any]:
        out = {}
        for name, (xx, yy) in evaluated.items():
            if not len(yy):
                continue
            p = predict(xx)
            if spec.kind == "regression":
                metrics = regression_metrics(yy, p)
            elif binary_scores:
                metrics = binary_metrics(yy, p)
            else:
                metrics = classification_metrics(yy.tolist(), p.argmax(1).tolist(), spec.labels) | main_score(
                    spec.kind, yy, p
                )
            out[name] = {k: v for k, v in metrics.items() if k in scorecard.HEADLINE}
        return out

    result: dict[str, dict[str, Any]] = {}
    if spec.kind == "binary":
        proba, _, points = scorecard.scorecard(x, y, encoder)
        result["scorecard"] = {**scored(proba, True), "points": points}
    else:
        name = "linear_ridge" if spec.kind == "regression" else "logistic_onehot"
        result[name] = scored(scorecard.linear_baseline(spec.kind, x, y, encoder), False)
    default = scorecard.lightgbm_default(spec.kind, x, y, encoder.categorical_indices, config.train.seed)
    result["lightgbm_default"] = scored(default, spec.kind == "binary")
    return result


def private_train_defaults() -> dict[str, Any]:
    """DP-SGD trains the MLP member alone, with its defaults."""
    from modelyard.learners.tabular_mlp import MLP_DEFAULTS

    return dict(MLP_DEFAULTS)


def privacy_problems(config: Config) -> list[str]:
    """DP-SGD trains the MLP alone: LightGBM learns from the rows without noise, and batch norm mixes the
    examples of a batch (each example's gradient would depend on the others)."""
    problems = []
    if config.model.backbone != "mlp":
        problems.append(f"model.backbone {config.model.backbone}: only the mlp trains with DP-SGD; set it to mlp")
    if config.model.norm == "batch":
        problems.append("model.norm batch: batch norm mixes the examples of a batch; set model.norm to layer")
    return problems


def load(directory: Path, manifest: dict[str, Any]) -> TabularLearner:
    onnx = manifest.get("runtime") == "onnxruntime"
    return TabularLearner.load(directory, manifest.get("backbone", "auto"), onnx=onnx)


def inputs_from_frame(frame: pd.DataFrame, config: Config) -> list[dict[str, Any]]:
    """`predict --input FILE`: one row per line, the target column ignored when present."""
    rows = frame.drop(columns=[config.data.target_column], errors="ignore")
    return json.loads(rows.to_json(orient="records"))


def feedback_example(config: Config, value: Any, label: str, kind: str = "classification") -> dict[str, Any] | None:
    """`retrain`: a logged request row with its corrected label (regression: the observed number) is a training
    row, the target replaced; a correction that is not a number is a DataError for a regressor."""
    if not isinstance(value, dict):
        return None
    target = config.data.target_column
    value = {k: v for k, v in value.items() if k != target}
    return {**value, target: number_label(config, label) if kind == "regression" else label}


def number_label(config: Config, label: Any) -> float:
    """A regressor's correction as a finite number (a CSV's text "156.0" included), checked where feedback
    arrives (`feedback import`, `/v1/feedback`) and again by `retrain` for labels stored before that check."""
    number = np.nan
    if isinstance(label, str | int | float) and not isinstance(label, bool):
        number = tabular.to_numeric(pd.Series([label], dtype=object)).iloc[0]
    if not np.isfinite(number):
        shown = repr(label) if len(repr(label)) <= 60 else repr(label)[:57] + "..."
        raise DataError(
            f"the corrected value {shown} of '{config.data.target_column}' is not a number",
            "send the observed value as a finite number (e.g. 1520.5) in the feedback label",
        )
    return float(number)


def retrain_layout(config: Config, report: dict[str, Any]) -> dict[str, Any]:
    """`retrain` writes every column of the splits to explicit files, so no time-ordered carving is redone, and
    matches feedback on the champion's feature columns. The columns the champion dropped stay dropped: feedback
    rows lack them (a request carries only features), and an ID with gaps is no longer "distinct in every row"."""
    drop = sorted(report["dropped_columns"])
    data = {"split": {"by": None}, "drop_columns": drop}
    return {"label": config.data.target_column, "columns": None, "keys": list(report["column_types"]), "data": data}
