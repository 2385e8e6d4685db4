"""The LSTM forecaster's learner: window normalisation fitted on train only, windows, scoring, serving.

Every window is made scale-free the same way in training and serving: values go to log scale when the training
part is strictly positive and varies by more than a factor of two (multiplicative trend and seasonality, as in
airline passengers), then each window is taken relative to its last observed value and divided by the series'
training-part standard deviation. The model therefore predicts changes, which carries level and trend to
unseen data and to series it never saw.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard.data.categories import id_text
from modelyard.data.timeseries import SeriesSplit, window_origins
from modelyard.errors import DataError
from modelyard.fsutil import atomic_write_json
from modelyard.metrics.forecast import forecast_metrics, mase_scale
from modelyard.models.lstm import LSTMConfig, LSTMForecaster
from modelyard.protocols import validate_input
from modelyard.runtimes.onnx_session import onnx_session
from modelyard.runtimes.protocol import ONNX_FILE, OnnxGraph
from modelyard.runtimes.torch_int8 import load_weights
from modelyard.training.checkpoint import save_weights

MIN_EPOCH_WINDOWS = 2048  # short series repeat their windows so that an epoch is a useful number of steps
MAX_RECURSIVE_STEPS = 1000
PREDICT_BATCH = 256
DEFAULTS = {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "scheduler": "cosine"}


class ForecastInput(BaseModel):
    """One forecast request: the series' recent values, oldest first, and how many steps to predict."""

    model_config = ConfigDict(extra="forbid")

    history: list[float] = Field(min_length=1, description="past values, oldest first, evenly spaced")
    horizon: int | None = Field(
        None,
        ge=1,
        le=MAX_RECURSIVE_STEPS,
        description="steps to forecast; default the trained horizon, longer is recursive",
    )
    id: str | int | None = Field(None, description="which training series this is (its scale is reused); optional")
    covariates: list[list[float]] | None = Field(
        None, description="for models trained with covariates: one row of their values per history step"
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> str | None:
        """2, 2.0 (a JSON Lines id column with a gap) and "2" name the same series, as training keys are text."""
        if isinstance(value, bool) or not isinstance(value, str | int | float | None):
            raise ValueError(f"{json.dumps(value)} is not an id: send text or a whole number")
        return id_text(value)


def use_log(train_values: list[np.ndarray]) -> bool:
    """`transform: auto`: log scale for strictly positive series spanning more than a factor of two."""
    joined = np.concatenate(train_values)
    return bool(joined.min() > 0 and joined.max() / joined.min() > 2)


def score(split: SeriesSplit, origins: list[tuple[int, int]], horizon: int, forecasts: np.ndarray) -> dict[str, Any]:
    """Metrics of (N, horizon) forecasts made at `origins`, against the split's observed values."""
    if not origins:
        return {}
    actual = np.stack([split.series[i].values[t : t + horizon] for i, t in origins])
    observed = np.stack([split.series[i].observed[t : t + horizon] for i, t in origins])
    scales = {i: mase_scale(split.series[i].values[: split.train_ends[i]], split.season) for i, _ in origins}
    return forecast_metrics(actual, forecasts, np.array([scales[i] for i, _ in origins]), observed)


class WindowDataset(torch.utils.data.Dataset):
    """(context, target) pairs in normalised units; `repeat` makes short series fill an epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, length: int) -> None:
        self.x = torch.from_numpy(x).float()  # (N, L, 1)
        self.y = torch.from_numpy(y).float()  # (N, H)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = i % len(self.x)
        return self.x[j], self.y[j]


class ForecastLearner:
    """LSTM + normalisation; `spec` holds everything `load` needs besides the weights."""

    backbone = "lstm"
    export_kind = "forecasts"  # the parity check compares forecast values and mae (export.parity)

    def __init__(self, module: LSTMForecaster, spec: dict[str, Any]) -> None:
        self.module = module
        self.spec = spec
        self.context = spec["model"]["context_length"]
        self.horizon = spec["model"]["horizon"]
        self.log = spec["log"]
        self.scales: dict[str, float] = spec["scales"]

    @classmethod
    def build(
        cls, options: Any, train: SeriesSplit, transform: str, covariates: list[str] | None = None
    ) -> ForecastLearner:
        values = [s.values for s in train.series]
        covariates = covariates or []
        cov = np.concatenate([s.covariates for s in train.series]) if covariates else np.zeros((1, 0))
        log = use_log(values) if transform == "auto" else transform == "log"
        floor = float(np.concatenate(values).min()) * 0.01 if log else 0.0
        spec = {
            "model": LSTMConfig(
                context_length=options.context_length,
                horizon=options.horizon,
                inputs=1 + len(covariates),
                hidden_size=options.hidden_size,
                layers=options.layers,
                dropout=options.dropout,
            ).as_dict(),
            "log": log,
            "floor": floor,
            "season": train.season,
            "scales": {},
            "covariates": covariates,  # scaled by training-part mean and standard deviation
            "covariate_mean": cov.mean(axis=0).tolist(),
            "covariate_std": [float(v) or 1.0 for v in cov.std(axis=0)],
        }
        learner = cls(LSTMForecaster(LSTMConfig(**spec["model"])), spec)
        for s in train.series:
            z = learner.transform(s.values)
            learner.scales[s.key] = float(np.std(z)) or 1.0
        return learner

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> ForecastLearner:
        module = load_weights(LSTMForecaster(LSTMConfig(**spec["model"])), directory / "model.safetensors")
        return cls(module.eval(), spec)

    def train_defaults(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Log scale as it is for every value above 0, whatever its units; the training-part floor stands in only
        for values at or below 0 (a validation, test or evaluated part that `transform: auto` did not see)."""
        if not self.log:
            return values
        return np.log(np.where(values > 0, values, self.spec["floor"]))

    def inverse(self, z: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # an overflow is refused by `predict`, naming the request
            return np.exp(z) if self.log else z

    def scale_for(self, key: str | None) -> float:
        if key is not None and key in self.scales:
            return self.scales[key]
        return float(np.median(list(self.scales.values())))

    def windows(
        self, split: SeriesSplit, origins: list[tuple[int, int]], targets: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Normalised contexts (N, L, 1 + covariates), targets (N, H) and each window's anchor (last value)."""
        x = np.empty((len(origins), self.context, 1 + len(self.spec.get("covariates", []))))
        y = np.empty((len(origins), self.horizon)) if targets else None
        anchors = np.empty(len(origins))
        z_by_series = [self.transform(s.values) for s in split.series]
        for row, (i, t) in enumerate(origins):
            z, scale = z_by_series[i], self.scale_for(split.series[i].key)
            anchors[row] = z[t - 1]
            x[row, :, 0] = (z[t - self.context : t] - z[t - 1]) / scale
            if x.shape[2] > 1:
                x[row, :, 1:] = self.scale_covariates(split.series[i].covariates[t - self.context : t])
            if y is not None:
                y[row] = (z[t : t + self.horizon] - z[t - 1]) / scale
        return x, y, anchors

    def scale_covariates(self, rows: np.ndarray) -> np.ndarray:
        return (rows - np.asarray(self.spec["covariate_mean"])) / np.asarray(self.spec["covariate_std"])

    def dataset(self, data: SeriesSplit, training: bool) -> WindowDataset:
        origins = window_origins(data, self.context, self.horizon)
        x, y, _ = self.windows(data, origins, targets=True)
        return WindowDataset(x, y, max(len(x), MIN_EPOCH_WINDOWS) if training else len(x))

    def collate(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"x": torch.stack([x for x, _ in items]), "y": torch.stack([y for _, y in items])}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.l1_loss(self.module(batch["x"]).float(), batch["y"])

    @torch.inference_mode()
    def _forward(self, x: np.ndarray) -> np.ndarray:
        module = getattr(self.module, "module", self.module)  # unwrap DistributedDataParallel
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        out = [
            module(torch.from_numpy(x[i : i + PREDICT_BATCH]).float().to(device)).float().cpu().numpy()
            for i in range(0, len(x), PREDICT_BATCH)
        ]
        module.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.horizon))

    def forecast_windows(self, split: SeriesSplit, origins: list[tuple[int, int]]) -> np.ndarray:
        """Forecasts in the data's units, (N, horizon)."""
        x, _, anchors = self.windows(split, origins, targets=False)
        scales = np.array([self.scale_for(split.series[i].key) for i, _ in origins])
        return self.inverse(anchors[:, None] + self._forward(x) * scales[:, None])

    def evaluate(self, data: SeriesSplit) -> dict[str, Any]:
        self.refuse_short_series(data)
        units, outputs = self.eval_outputs(data)
        return self.eval_score(data, outputs[np.argsort(units)])

    def refuse_short_series(self, data: SeriesSplit) -> None:
        """A series with no window to score would be left out of the metrics without a word (training's splits
        are made long enough; a file given to `evaluate --data` is checked here, against this model's context)."""
        needed = self.context + self.horizon
        for s in data.series:
            if len(s.values) < needed:
                where = f"{data.source}: " if data.source else ""
                raise DataError(
                    f"{where}series {s.key or '(single)'} has {len(s.values)} points: too few to score this model, "
                    f"which needs {needed} per series (context_length {self.context} + horizon {self.horizon})",
                    "score a longer stretch of the series",
                )

    def eval_outputs(self, data: SeriesSplit, shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Forecast origins (their indices) and forecasts, from every shard[1]-th batch of PREDICT_BATCH origins
        (ShardedEvaluation)."""
        origins = window_origins(data, self.context, self.horizon)
        batches = [np.arange(i, min(i + PREDICT_BATCH, len(origins))) for i in range(0, len(origins), PREDICT_BATCH)]
        units = np.concatenate(batches[shard[0] :: shard[1]] or [np.zeros(0, dtype=np.int64)])
        if not len(units):
            return units, np.zeros((0, self.horizon))
        return units, self.forecast_windows(data, [origins[i] for i in units])

    def eval_score(self, data: SeriesSplit, outputs: np.ndarray) -> dict[str, Any]:
        return score(data, window_origins(data, self.context, self.horizon), self.horizon, outputs)

    def parse_input(self, item: Any) -> ForecastInput:
        """Validate one request; a DataError names the problem (HTTP 422, CLI exit 1)."""
        item = validate_input(ForecastInput, item)
        if len(item.history) < self.context:
            raise DataError(
                f"history has {len(item.history)} values; this model reads the last "
                f"{self.context} (context_length), so send at least that many"
            )
        if not np.isfinite(item.history).all():
            raise DataError("history contains NaN or infinite values; fill gaps before sending")
        if self.log and min(item.history) <= 0:
            first = next(i for i, v in enumerate(item.history) if v <= 0)
            raise DataError(
                f"history[{first}] is {item.history[first]:g}: this model works in log scale (model.transform) "
                "and needs values above 0"
            )
        names = self.spec.get("covariates", [])
        if item.covariates and not names:
            raise DataError("this model reads no covariates: leave 'covariates' out of the request")
        if names:
            rows = item.covariates or []
            if len(rows) != len(item.history) or any(len(r) != len(names) for r in rows):
                raise DataError(
                    f"this model also reads covariates {names}: send 'covariates' with one row of "
                    f"{len(names)} values per history value ({len(item.history)} rows)"
                )
            if (item.horizon or self.horizon) > self.horizon:
                raise DataError(
                    f"this model reads covariates whose future values are unknown, so it forecasts at most "
                    f"{self.horizon} steps (its horizon); ask for fewer"
                )
        return item

    def example_input(self) -> dict[str, Any]:
        """The server's warm-up request: one context of ones, with covariates when the model reads them."""
        request: dict[str, Any] = {"history": [1.0] * self.context, "horizon": 1}
        if names := self.spec.get("covariates"):
            request["covariates"] = [[0.0] * len(names)] * self.context
        return request

    def _direct(self, histories: list[np.ndarray], requests: list[ForecastInput]) -> np.ndarray:
        """One direct forecast (N, horizon) in the data's units from the last `context` values of each history."""
        x = np.empty((len(histories), self.context, 1 + len(self.spec.get("covariates", []))))
        anchors, scales = np.empty(len(histories)), np.empty(len(histories))
        for row, (history, req) in enumerate(zip(histories, requests, strict=True)):
            z = self.transform(history[-self.context :])
            anchors[row], scales[row] = z[-1], self.scale_for(req.id)
            x[row, :, 0] = (z - z[-1]) / scales[row]
            if req.covariates:
                x[row, :, 1:] = self.scale_covariates(np.asarray(req.covariates[-self.context :], dtype=np.float64))
        return self.inverse(anchors[:, None] + self._forward(x) * scales[:, None])

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """Direct forecasts up to the trained horizon; longer horizons feed forecasts back in (recursive).

        All requests go through the model together, one batch per `horizon` steps of the longest request."""
        requests = []
        for number, item in enumerate(inputs, 1):
            try:
                requests.append(self.parse_input(item))
            except DataError as err:  # name the request: a file of many (`predict --input`) says which one
                raise DataError(f"request {number}: {err.message}", err.hint) from None
        steps = [req.horizon or self.horizon for req in requests]
        known = [np.asarray(req.history, dtype=np.float64) for req in requests]  # history, then forecasts
        while live := [i for i, req in enumerate(requests) if len(known[i]) - len(req.history) < steps[i]]:
            forecasts = self._direct([known[i] for i in live], [requests[i] for i in live])
            for i, forecast in zip(live, forecasts, strict=True):
                if not np.isfinite(forecast).all():  # JSON has no infinity: it would be answered as null
                    raise DataError(
                        f"request {i + 1}: the forecast overflows the range of numbers (history up to "
                        f"{max(map(abs, requests[i].history)):g}, {steps[i]} steps)",
                        "send the history in larger units (thousands, millions) or ask for fewer steps",
                    )
                known[i] = np.concatenate([known[i], forecast])
        return [
            {
                "forecast": [float(v) for v in values[len(req.history) :][:n]],
                "horizon": n,
                "recursive": n > self.horizon,
            }
            for req, values, n in zip(requests, known, steps, strict=True)
        ]

    def save(self, directory: Path) -> dict[str, Any]:
        module = getattr(self.module, "module", self.module)
        save_weights(module, directory / "model.safetensors")
        atomic_write_json(directory / "forecaster.json", self.spec)
        return {"horizon": self.horizon, "context_length": self.context, "season_length": self.spec["season"]}

    def onnx_graph(self) -> OnnxGraph:
        """Normalised windows (B, context, channels) -> changes (B, horizon), dynamic in batch; dynamic int8.

        The window length is fixed by the architecture (the linear shortcut reads exactly `context` steps)."""
        module = getattr(self.module, "module", self.module)
        x = torch.zeros(2, self.context, module.config.inputs)
        return OnnxGraph(module, (x,), ["x"], ["y"], {"x": {0: "batch"}, "y": {0: "batch"}}, "dynamic")

    def export_examples(self, data: SeriesSplit) -> tuple[list[dict[str, Any]], np.ndarray]:
        """One request per evaluation window of the split, and the values that followed it (N, horizon)."""
        origins = window_origins(data, self.context, self.horizon)
        inputs = []
        for i, t in origins:
            series = data.series[i]
            request: dict[str, Any] = {"history": series.values[t - self.context : t].tolist(), "id": series.key}
            if self.spec.get("covariates"):
                request["covariates"] = series.covariates[t - self.context : t].tolist()
            inputs.append(request)
        targets = np.stack([data.series[i].values[t : t + self.horizon] for i, t in origins]) if origins else []
        return inputs, np.asarray(targets)

    def export_outputs(self, inputs: list[dict[str, Any]]) -> np.ndarray:
        return np.array([answer["forecast"] for answer in self.predict(inputs)])


class OnnxForecastLearner(ForecastLearner):
    """The same forecaster (normalisation, recursion, scoring) running its LSTM through ONNX Runtime."""

    def __init__(self, session_path: Path, spec: dict[str, Any]) -> None:
        super().__init__(None, spec)
        self.session_path = session_path
        self.session = onnx_session(session_path)

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any]) -> OnnxForecastLearner:
        return cls(directory / ONNX_FILE, spec)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = [
            self.session.run(["y"], {"x": x[i : i + PREDICT_BATCH].astype(np.float32)})[0]
            for i in range(0, len(x), PREDICT_BATCH)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.horizon))

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.session_path, directory / ONNX_FILE)
        atomic_write_json(directory / "forecaster.json", self.spec)
        return {"horizon": self.horizon, "context_length": self.context, "season_length": self.spec["season"]}
