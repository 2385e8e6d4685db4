"""Tabular learner: GBDT and/or MLP members over one encoded matrix, blended, calibrated and thresholded.

`backbone: auto` trains the families of `model.candidates` in turn (default LightGBM, then the MLP through the
shared training loop; CatBoost on request) within `train.time_limit_s`, and keeps the best of them alone or their
weighted ensemble on validation. The decision
threshold (from costs or a recall target), the calibration map and the conformal interval are fitted on
validation and saved in `tabular.json`; `/v1/predict` applies them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelyard.config import EarlyStopping
from modelyard.errors import BundleError, DataError, UserError
from modelyard.fsutil import atomic_write_json
from modelyard.learners import tabular_catboost as cboost
from modelyard.learners import tabular_gbdt as gbdt
from modelyard.learners import tabular_post as post
from modelyard.learners.tabular_encoding import TabularEncoder
from modelyard.learners.tabular_post import main_score
from modelyard.metrics.classification import classification_metrics, top_k_answers
from modelyard.metrics.risk import (
    binary_metrics,
    calibration_curve,
    group_metrics,
    multiclass_group_metrics,
    regression_group_metrics,
    regression_metrics,
)

SPEC_FILE = "tabular.json"
if TYPE_CHECKING:  # torch is imported only when an MLP member is built or loaded (GBDT-only scoring stays light)
    from modelyard.learners.tabular_mlp import MLPMember

CANDIDATES = ("lightgbm", "mlp")  # `auto`'s default members (CatBoost added nothing on the credit data in CV)


@dataclass
class TabularSpec:
    """What a tabular learner needs besides its members; saved as tabular.json."""

    kind: str  # binary | multiclass | regression
    target: str
    labels: list[str] | None
    encoder: TabularEncoder
    groups: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=lambda: {"method": "none"})
    threshold: dict[str, Any] = field(default_factory=lambda: {"threshold": 0.5, "rule": "default"})
    interval: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)


class TabularLearner:
    """A Learner trained without gradients at this level (module None): `fit` trains the members itself."""

    module = None

    def __init__(self, spec: TabularSpec, backbone: str, options: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.backbone = backbone
        self.options = options or {}  # training-time only: config sections the members need
        self.booster: Any = None
        self.catboost: cboost.BaggedCatBoost | None = None
        self.mlp: MLPMember | None = None
        self.sessions: dict[str, Any] = {}  # ONNX Runtime members of an exported bundle
        self.privacy: dict[str, Any] | None = None  # the MLP's spent (epsilon, delta) under train.privacy
        self.held_out: tuple[pd.DataFrame, np.ndarray] | None = None  # the validation split fitted on, its scores
        self.fits_validation_rows = False  # bagged fold models trained on the validation rows too (export checks test)

    @property
    def labels(self) -> list[str] | None:
        return self.spec.labels

    def train_defaults(self) -> dict[str, Any]:
        return {"epochs": 1, "batch_size": 1, "learning_rate": 1.0}

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.spec.target]
        if self.spec.kind == "regression":
            return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        index = {label: i for i, label in enumerate(self.spec.labels)}
        return values.astype(str).map(index).to_numpy(dtype=int)

    # training ---------------------------------------------------------------------------------------------------
    def fit(self, train: pd.DataFrame, validation: pd.DataFrame | None = None) -> None:
        if validation is None or not len(validation):
            raise UserError("tabular models need a validation split (early stopping, calibration, threshold)")
        started = time.monotonic()
        budget = self.options.get("time_limit_s")
        x, y = self.spec.encoder.transform(train), self.targets(train)
        xv, yv = self.spec.encoder.transform(validation), self.targets(validation)
        kind, classes = self.spec.kind, len(self.spec.labels or [])
        outputs: dict[str, np.ndarray] = {}
        seed = self.options.get("seed", 42)
        folds = self.options.get("folds", 1) if len(x) >= gbdt.MIN_BAG_ROWS else 1
        auto = self.backbone == "auto"
        tries = self.options.get("candidates", CANDIDATES) if auto else [self.backbone]
        if "lightgbm" in tries:
            share = budget * (0.4 if len(tries) > 1 else 1.0) if budget else None
            common = (kind, classes, self.spec.encoder.categorical_indices, self.options.get("monotone"), share,
                      seed, self.options.get("gbdt_params"))  # fmt: skip
            self.booster, outputs["lightgbm"] = gbdt.fit_member(x, y, xv, yv, *common, folds=folds)
            rounds = getattr(self.booster, "rounds", None) or self.booster.best_iteration
            note = f"{rounds} rounds" + (f" ({folds} folds; validation out-of-fold)" if folds > 1 else "")
            self._tried("lightgbm", yv, outputs["lightgbm"], started, note)
        left = budget - (time.monotonic() - started) if budget else None
        if "catboost" in tries and (not auto or self._allowed("catboost", left)):
            begun, share = time.monotonic(), left * (0.5 if "mlp" in tries else 1.0) if left else None
            self.catboost, outputs["catboost"] = cboost.fit_member(
                x, y, xv, yv, kind, classes, share, seed, self.options.get("catboost_params"), folds
            )
            note = f"{self.catboost.rounds} rounds" + (f" ({folds} folds; validation out-of-fold)" if folds > 1 else "")
            self._tried("catboost", yv, outputs["catboost"], begun, note)
        left = budget - (time.monotonic() - started) if budget else None
        if "mlp" in tries and (not auto or self._allowed("mlp", left)):
            begun = time.monotonic()
            self._fit_mlp(x, y, xv, yv, classes, left)
            outputs["mlp"] = self.mlp.outputs(xv)
            self._tried("mlp", yv, outputs["mlp"], begun, "shared training loop")
        self.spec.weights = self._select(yv, outputs)
        self.fits_validation_rows = folds > 1 and any(n in ("lightgbm", "catboost") for n in self.spec.weights)
        blended = post.blend(outputs, self.spec.weights)
        if kind == "binary":
            self.spec.calibration = post.fit_calibration(yv, blended[:, 1], self.options.get("calibration", "auto"))
            calibrated = post.calibrate(blended[:, 1], self.spec.calibration)
            self.spec.threshold = post.choose_threshold(yv, calibrated, self.options.get("evaluation"))
            blended = np.stack([1 - calibrated, calibrated], axis=1)
        if kind == "regression":
            self.spec.interval = post.conformal_interval(yv, blended)
        self.held_out = (validation, blended)

    def _allowed(self, name: str, left: float | None) -> bool:
        """`auto` tries CatBoost or the MLP unless model.monotone is set (only LightGBM's trees are constrained)
        or under 10 s of the budget is left."""
        if self.options.get("monotone") and any(self.options["monotone"]):
            self.spec.candidates.append({"backbone": name, "skipped": "model.monotone constrains LightGBM only"})
            return False
        if left is not None and left < 10:
            self.spec.candidates.append({"backbone": name, "skipped": f"time budget spent ({left:.0f} s left)"})
            return False
        return True

    def _fit_mlp(self, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, classes: int, seconds) -> None:
        from modelyard.learners.tabular_mlp import Arrays, Deadline, MLPMember
        from modelyard.protocols import PreparedData
        from modelyard.training.loop import fit

        kind = self.spec.kind
        cards = [f["cardinality"] for f in self.spec.encoder.features]
        score = lambda yy, out: main_score(kind, yy, out)  # noqa: E731
        self.mlp = MLPMember.build(cards, 1 if kind == "regression" else classes, kind, self.options["mlp"], score)
        target = self.mlp.standardise(x, y)
        splits = {
            "train": Arrays(x, target),
            "validation": Arrays(xv, self.mlp.target(yv)),
            "test": Arrays(xv[:0], yv[:0]),
        }
        config = self.options["config"]
        metric = "rmse" if kind == "regression" else "roc_auc"
        es = config.train.early_stopping
        patience = max(5, es.patience if es else 5)
        stopping = EarlyStopping(patience=patience, metric=metric)
        train_cfg = config.train.model_copy(update={"early_stopping": stopping})
        deadline = [Deadline(seconds)] if seconds else []
        result = fit(self.mlp, config.model_copy(update={"train": train_cfg}), PreparedData(splits), callbacks=deadline,
                     quiet=True, main_metric=metric, greater_is_better=kind != "regression")  # fmt: skip
        self.privacy = result.privacy

    def _tried(self, name: str, y: np.ndarray, out: np.ndarray, began: float, note: str) -> None:
        score = main_score(self.spec.kind, y, out)
        entry = {"backbone": name, "seconds": round(time.monotonic() - began, 2), "note": note}
        self.spec.candidates.append({**entry, "validation": score})

    def _select(self, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """The best member alone, or the greedy ensemble of the members close to it when that scores better on
        validation by more than noise (a half-trained member must not win weight on a lucky validation draw).
        The ensemble is judged out of fold (each validation row blended by weights fitted on the other rows) and
        must beat the best member by one bootstrap standard error of their difference: the one-standard-error
        rule, which keeps the simpler model when the evidence is within the luck of the draw."""
        kind = self.spec.kind
        sign = -1.0 if kind == "regression" else 1.0
        score = lambda yy, out: sign * next(iter(main_score(kind, yy, out).values()))  # noqa: E731
        value = lambda out: score(y, out)  # noqa: E731
        scores = {n: value(out) for n, out in outputs.items()}
        best = max(scores, key=scores.get)
        slack = 0.02 if kind != "regression" else 0.05 * abs(scores[best])
        close = {n: out for n, out in outputs.items() if scores[n] >= scores[best] - slack}
        if len(close) == 1:
            return {best: 1.0}
        classes = kind != "regression"
        weights = post.greedy_ensemble(close, value)
        blended = post.out_of_fold_blend(close, y, score, classes)
        if blended is None:
            note = "too few validation rows per class to judge it out of fold: the best member alone"
            self.spec.candidates.append({"backbone": "ensemble", "weights": weights, "judged": note})
            return {best: 1.0}
        ensemble = value(blended)
        floor = 1e-3 if classes else 1e-3 * abs(scores[best])
        margin = max(floor, post.paired_bootstrap_se(y, blended, close[best], score, classes))
        self.spec.candidates.append({
            "backbone": "ensemble", "weights": weights, "validation": abs(ensemble),
            "judged": f"weights out of fold; kept only {margin:.4f} above the best member (one bootstrap SE)",
        })  # fmt: skip
        return weights if ensemble > scores[best] + margin else {best: 1.0}

    # prediction -------------------------------------------------------------------------------------------------
    def member_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name in self.spec.weights:
            if name in self.sessions:
                out[name] = self._onnx_outputs(name, x)
            elif name == "lightgbm":
                out[name] = gbdt.gbdt_outputs(self.booster, x, self.spec.kind)
            elif name == "catboost":
                out[name] = self.catboost.outputs(x)
            else:
                out[name] = self.mlp.outputs(x)
        return out

    def _onnx_outputs(self, name: str, x: np.ndarray) -> np.ndarray:
        sessions = self.sessions[name]
        if name == "catboost":
            return cboost.onnx_outputs(sessions, x, self.spec.kind)
        if name == "lightgbm":  # fold models averaged, as BaggedGBDT.predict
            results = [s.run(None, {"features": x}) for s in sessions]
            return np.mean([r[1] if self.spec.kind != "regression" else r[0][:, 0] for r in results], axis=0)
        logits = sessions[0].run(None, {"features": x})[0]
        if self.spec.kind == "regression":
            return logits[:, 0] * self.mlp_target[1] + self.mlp_target[0]
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated (N, K) probabilities or (N,) values for a frame of rows."""
        out = post.blend(self.member_outputs(self.spec.encoder.transform(frame)), self.spec.weights)
        if self.spec.kind == "binary":
            positive = post.calibrate(out[:, 1], self.spec.calibration)
            return np.stack([1 - positive, positive], axis=1)
        return out

    def decide(self, scores: np.ndarray) -> np.ndarray:
        if self.spec.kind == "binary":
            return (scores[:, 1] >= self.spec.threshold["threshold"]).astype(int)
        return scores.argmax(1)

    def parse_input(self, row: Any) -> dict[str, Any]:
        """A request row checked against the training schema (unknown column, wrong type: DataError, a 422)."""
        self.spec.encoder.check_row(row)
        return row

    def _row_notes(self, row: Any, index: int) -> list[str]:
        """`check_row`'s notes on the row at `index`; its DataError names the row as the server does (`inputs.3`)."""
        try:
            return self.spec.encoder.check_row(row)
        except DataError as err:
            raise DataError(f"inputs.{index}: {err.message}", err.hint) from None

    def check_frame(self, frame: pd.DataFrame) -> dict[str, Any]:
        """`parse_input` for a batch file: absent and unknown columns, and the rows `check_row` would flag."""
        encoder = self.spec.encoder
        unknown = [c for c in frame.columns if c not in encoder.types and c not in encoder.ignored]
        absent = [c for c in encoder.types if c not in frame.columns]
        return {"missing_columns": absent, "unknown_columns": unknown, **encoder.check_frame(frame)}

    def example_input(self) -> dict[str, Any]:
        return dict.fromkeys(self.spec.encoder.types)

    def predict(self, inputs: list[dict[str, Any]], top_k: int = 1) -> list[dict[str, Any]]:
        notes = [self._row_notes(row, index) for index, row in enumerate(inputs)]
        answers = self.answers(pd.DataFrame(list(inputs)), top_k)
        for answer, note in zip(answers, notes, strict=True):
            if note:
                answer["notes"] = note
        return answers

    def answers(self, frame: pd.DataFrame, top_k: int = 1) -> list[dict[str, Any]]:
        scores = self.scores(frame)
        if self.spec.kind == "regression":
            half = self.spec.interval.get("half_width", float("nan"))
            return [{"value": float(v), "interval": [float(v - half), float(v + half)]} for v in scores]
        binary = self.spec.kind == "binary"  # both class probabilities: the label is decided by the threshold
        answers = top_k_answers(scores, self.spec.labels, 2 if binary else top_k)
        if self.spec.kind == "binary":
            cut = self.spec.threshold["threshold"]
            for answer, p, d in zip(answers, scores[:, 1], self.decide(scores), strict=True):
                answer.update(label=self.spec.labels[d], score=float(p if d else 1 - p), probability=float(p))
                answer["threshold"] = cut
        return answers

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Batch scoring of a chunk of rows (`predict --input`): one output column per answer field."""
        scores = self.scores(frame)
        if self.spec.kind == "regression":
            half = self.spec.interval.get("half_width", float("nan"))
            return pd.DataFrame({"prediction": scores, "low": scores - half, "high": scores + half})
        labels = np.asarray(self.spec.labels, dtype=object)
        out = pd.DataFrame({"label": labels[self.decide(scores)]})
        if self.spec.kind == "binary":
            out["probability"] = scores[:, 1]
        else:
            out["score"] = scores.max(1)
        return out

    # evaluation -------------------------------------------------------------------------------------------------
    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        if not len(data):
            return {}
        y = self.targets(data)
        scores = self._evaluation_scores(data)
        kind = self.spec.kind
        if kind == "regression":
            half = self.spec.interval.get("half_width", float("nan"))
            from modelyard.metrics.risk import interval_coverage

            metrics = {**regression_metrics(y, scores), **interval_coverage(y, scores - half, scores + half)}
            return metrics | self._groups(data, lambda g: regression_group_metrics(y, scores, g))
        decided = self.decide(scores)
        metrics = classification_metrics(y.tolist(), decided.tolist(), self.spec.labels)
        present = np.unique(y)
        if len(present) > 1:
            metrics |= main_score(kind, y, scores)
        else:  # e.g. a file of defaulters only: recall and precision still say something, a ranking does not
            only = self.spec.labels[present[0]]
            metrics["undefined"] = {"roc_auc": f"the rows hold one class only ('{only}'): no ranking to measure"}
        if kind == "binary":
            metrics |= binary_metrics(y, scores[:, 1], self.spec.threshold["threshold"])
            metrics["threshold_rule"] = self.spec.threshold["rule"]
            metrics["calibration"] = self.spec.calibration["method"]
            metrics["calibration_curve"] = calibration_curve(y, scores[:, 1])
        if kind == "binary":
            return metrics | self._groups(data, lambda g: group_metrics(y == 1, decided, g))
        return metrics | self._groups(data, lambda g: multiclass_group_metrics(y, decided, g, self.spec.labels))

    def _evaluation_scores(self, data: pd.DataFrame) -> np.ndarray:
        """`scores(data)`, except for the validation split `fit` saw: its held-out scores from then. Bagged members
        trained on those rows, so scoring them again would be in-sample (ROC-AUC 0.87 against 0.75 out of fold on
        1,200 credit rows), and `tune`, the model card and `auto`'s candidates must read the same honest number."""
        if self.held_out is not None:
            frame, scores = self.held_out
            if data is frame or (data.shape == frame.shape and data.equals(frame)):
                return scores
        return self.scores(data)

    @staticmethod
    def reported_metrics(kind: str) -> tuple[str, ...]:
        """The scalar metrics `evaluate` reports for `kind` (binary, multiclass, regression), found by running its
        metric functions on a tiny sample, so what `tune.metric` is checked against cannot drift from evaluate."""
        from modelyard.metrics.risk import interval_coverage

        y = np.array([0, 1, 2, 0, 1, 2]) if kind == "multiclass" else np.array([0, 1, 0, 1])
        if kind == "regression":
            pred = y + 0.5
            metrics = {**regression_metrics(y, pred), **interval_coverage(y, pred - 1, pred + 1)}
        else:
            labels = [str(c) for c in np.unique(y)]
            scores = np.eye(len(labels))[y] * 0.8 + 0.1
            metrics = classification_metrics(y.tolist(), y.tolist(), labels) | main_score(kind, y, scores)
            metrics |= binary_metrics(y, scores[:, 1], 0.5) if kind == "binary" else {}
        return tuple(k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool))

    def _groups(self, data: pd.DataFrame, measure: Callable[[np.ndarray], dict[str, Any]]) -> dict[str, Any]:
        """{"groups": {column: measure(its values)}} for each `evaluation.groups` column in `data`, or {}."""
        found = {g: measure(data[g].to_numpy()) for g in self.spec.groups if g in data.columns}
        return {"groups": found} if found else {}

    def input_notes(self, data: pd.DataFrame) -> list[str]:
        """What `evaluate --data` should say about a file's cells, as batch prediction does: categories unseen in
        training (scored as 'other') and values of the wrong type (scored as missing), counted per column, and the
        feature columns it lacks."""
        found = self.spec.encoder.check_frame(data)
        what = {"wrong_type": "values of the wrong type, scored as missing", "unseen": "unseen categories, as 'other'"}
        notes = [f"{column}: {len(rows)} rows with {what[key]}" for key in what for column, rows in found[key].items()]
        absent = [column for column in self.spec.encoder.types if column not in data.columns]
        return notes + ([f"no column {', '.join(absent)}: scored as missing in every row"] if absent else [])

    # explanations -----------------------------------------------------------------------------------------------
    @property
    def explainable(self) -> bool:
        return self.booster is not None

    def explain(self, row: dict[str, Any], label: str | None = None) -> dict[str, Any]:
        """Reason codes: TreeSHAP values of the GBDT member summed per column, top ones pushing up and down."""
        from modelyard.learners.tabular_explain import reason_codes

        return reason_codes(self, row, label)

    # export and monitoring ------------------------------------------------------------------------------------
    @property
    def export_kind(self) -> str:
        return "forecasts" if self.spec.kind == "regression" else "probabilities"

    def export_examples(self, split: pd.DataFrame) -> tuple[list[dict[str, Any]], np.ndarray]:
        rows = split.drop(columns=[self.spec.target]).to_dict("records")
        return rows, self.targets(split)

    def export_outputs(self, inputs: list[dict[str, Any]]) -> np.ndarray:
        scores = self.scores(pd.DataFrame(inputs))
        return scores[:, None] if scores.ndim == 1 else scores

    def write_onnx(self, directory: Path) -> None:
        """One ONNX graph per member (`lightgbm.onnx`, `mlp.onnx`), each reading the encoded (N, F) matrix."""
        from modelyard.learners.tabular_export import write_member_onnx

        write_member_onnx(self, directory)

    def reference_profile(self, splits: dict[str, Any]) -> dict[str, Any]:
        from modelyard.learners.tabular_export import reference_profile

        return reference_profile(self, splits["train"])

    def feature_drift(self, profile: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        """PSI and CSI per feature of logged request rows against the bundle's reference profile."""
        from modelyard.learners.tabular_export import feature_drift

        x = self.spec.encoder.transform(pd.DataFrame(rows))
        return feature_drift(profile, x, self.spec.encoder.feature_names)

    # persistence ------------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        members: dict[str, Any] = {}
        if self.booster is not None:
            members["lightgbm"] = gbdt.save_gbdt(self.booster, directory)
        if self.catboost is not None:
            members["catboost"] = cboost.save(self.catboost, directory)
        if self.mlp is not None:
            members["mlp"] = self.mlp.save(directory)
        spec = self.spec
        atomic_write_json(
            directory / SPEC_FILE,
            {
                "kind": spec.kind, "target": spec.target, "labels": spec.labels, "groups": spec.groups,
                "encoder": spec.encoder.to_json(), "members": members, "weights": spec.weights,
                "calibration": spec.calibration, "threshold": spec.threshold, "interval": spec.interval,
                "candidates": spec.candidates, "features": spec.encoder.feature_names,
            },
        )  # fmt: skip
        return {"labels": spec.labels} if spec.labels else {}

    @classmethod
    def load(cls, directory: Path, backbone: str, onnx: bool = False) -> TabularLearner:
        path = directory / SPEC_FILE
        if not path.is_file():
            raise BundleError(f"{directory}: no {SPEC_FILE}; not a tabular bundle")
        raw = json.loads(path.read_text(encoding="utf-8"))
        spec = TabularSpec(
            raw["kind"], raw["target"], raw["labels"], TabularEncoder.from_json(raw["encoder"]), raw["groups"],
            raw["weights"], raw["calibration"], raw["threshold"], raw["interval"], raw["candidates"],
        )  # fmt: skip
        learner = cls(spec, backbone)
        members = raw["members"]
        learner.fits_validation_rows = any(len(members[n].get("files", [0])) > 1 for n in spec.weights)
        if "lightgbm" in members:
            learner.booster = gbdt.load_gbdt(directory, members["lightgbm"])  # ONNX exports keep it: explanations
        if onnx:
            from modelyard.runtimes.onnx_session import onnx_session

            for name in spec.weights:
                folds = len(members[name].get("files", [0]))
                files = {"lightgbm": gbdt.onnx_files(folds), "catboost": cboost.onnx_files(folds)}.get(
                    name, [f"{name}.onnx"]
                )
                # warnings off: a LightGBM graph declares its label output as one row and warns on every batch
                learner.sessions[name] = [onnx_session(directory / f) for f in files]
            if "mlp" in members:
                learner.mlp_target = (members["mlp"]["target_mean"], members["mlp"]["target_scale"])
            return learner
        if "catboost" in members:
            learner.catboost = cboost.load(directory, members["catboost"], spec.kind)
        if "mlp" in members:
            from modelyard.learners.tabular_mlp import MLPMember

            learner.mlp = MLPMember.load(directory, members["mlp"], spec.kind)
        return learner
