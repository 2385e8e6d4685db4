"""The neural member of a tabular learner: `models.tabular_mlp.TabularMLP` trained by the shared training loop.

It is a Learner in its own right (module, dataset, collate, loss, evaluate), so `training.loop.fit` owns the
optimiser, precision, early stopping and best-weight restoring, exactly as for the text and image models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modelyard.fsutil import atomic_path
from modelyard.models.tabular_mlp import TabularMLP, TabularMLPConfig
from modelyard.training.callbacks import Callback, TrainerControl, TrainerState

MLP_FILE = "model.safetensors"


MLP_DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 512,
    "learning_rate": 2e-3,
    "weight_decay": 1e-5,
    "warmup_ratio": 0.02,
    "scheduler": "cosine",
    "precision": "fp32",  # tiny matmuls: bf16 buys nothing on CPU and costs accuracy
}


class Deadline(Callback):
    """Stops the loop once the time budget is spent; the loop then evaluates and keeps the best weights."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def on_step_end(self, state: TrainerState, control: TrainerControl, logs: dict[str, float]) -> None:
        control.should_stop = control.should_stop or time.monotonic() > self.end


@dataclass
class Arrays:
    """One split as the MLP sees it: the encoded matrix and targets (class index, or standardised value)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, data: Arrays) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(data.y))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class MLPMember:
    """Trained through the shared loop; `score(y, outputs)` gives the metrics early stopping watches."""

    backbone = "mlp"

    def __init__(self, module: TabularMLP, kind: str, score: Callable[[np.ndarray, np.ndarray], dict] | None) -> None:
        self.module: torch.nn.Module | None = module
        self.kind = kind
        self.score = score
        self.target_mean, self.target_scale = 0.0, 1.0
        self.precision = "fp32"

    @classmethod
    def build(cls, cardinalities: list[int], outputs: int, kind: str, options: dict[str, Any], score) -> MLPMember:
        config = TabularMLPConfig(cardinalities, outputs, **options)
        return cls(TabularMLP(config), kind, score)

    def standardise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fix input means/scales (and the regression target's) from training rows; returns the model's target."""
        module = self.module
        numeric = x[:, module.numeric_index.numpy()]
        with torch.no_grad():
            module.mean.copy_(torch.from_numpy(np.nan_to_num(np.nanmean(numeric, axis=0))))
            module.scale.copy_(torch.from_numpy(np.nan_to_num(np.nanstd(numeric, axis=0), nan=1.0) + 1e-6))
        if self.kind != "regression":
            return y.astype(np.int64)
        self.target_mean, self.target_scale = float(y.mean()), float(y.std() + 1e-12)
        return self.target(y)

    def target(self, y: np.ndarray) -> np.ndarray:
        if self.kind != "regression":
            return y.astype(np.int64)
        return ((y - self.target_mean) / self.target_scale).astype(np.float32)

    def train_defaults(self) -> dict[str, Any]:
        return dict(MLP_DEFAULTS)

    def dataset(self, data: Arrays, training: bool) -> torch.utils.data.Dataset:
        return _Rows(data)

    def collate(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"x": torch.stack([x for x, _ in items]), "y": torch.stack([y for _, y in items])}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.module(batch["x"])
        if self.kind == "regression":
            return torch.nn.functional.mse_loss(out[:, 0], batch["y"].float())
        return torch.nn.functional.cross_entropy(out, batch["y"].long())

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """(N, K) probabilities, or (N,) values in the target's units."""
        module = self.module
        was_training = module.training  # evaluated mid-training: the loop's next steps need train mode back
        module.eval()
        chunks = []
        device = next(module.parameters()).device  # trained or served on CUDA: rows go where the weights are
        with torch.inference_mode():
            for start in range(0, len(x), 8192):
                rows = torch.from_numpy(np.ascontiguousarray(x[start : start + 8192])).to(device)
                chunks.append(module(rows).float().cpu())
        module.train(was_training)
        out = torch.cat(chunks) if chunks else torch.zeros((0, module.config.outputs))
        if self.kind == "regression":
            return out[:, 0].numpy() * self.target_scale + self.target_mean
        return torch.softmax(out, dim=1).numpy()

    def evaluate(self, data: Arrays) -> dict[str, Any]:
        y = data.y if self.kind != "regression" else data.y * self.target_scale + self.target_mean
        return self.score(y, self.outputs(data.x)) if self.score else {}

    def save(self, directory: Path) -> dict[str, Any]:
        with atomic_path(directory / MLP_FILE) as tmp:
            save_file({k: v.contiguous() for k, v in self.module.state_dict().items()}, str(tmp))
        return {
            "config": self.module.config.as_dict(),
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
        }

    @classmethod
    def load(cls, directory: Path, spec: dict[str, Any], kind: str) -> MLPMember:
        module = TabularMLP(TabularMLPConfig(**spec["config"]))
        module.load_state_dict(load_file(str(directory / MLP_FILE)))
        member = cls(module.eval(), kind, None)
        member.target_mean, member.target_scale = spec["target_mean"], spec["target_scale"]
        return member
