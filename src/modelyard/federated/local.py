"""One site's part of a round: start from the global weights, train a few local epochs on its own rows with the
shared training loop, and hand back the change (FedAvg), pulled towards the global weights when FedProx's mu > 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelyard.config import Config
from modelyard.federated import aggregate
from modelyard.protocols import Learner, PreparedData


@dataclass
class LocalSettings:
    """What the server asks of each site in a round."""

    epochs: int
    learning_rate: float
    mu: float = 0.0  # FedProx proximal weight; 0 is FedAvg
    seed: int = 0
    rounds: int = 1  # a site's `train.privacy` budget is split evenly over the rounds (basic composition)
    balanced: bool = False  # federated.local_loss balanced: balanced softmax with this site's label counts


@dataclass
class LocalResult:
    delta: np.ndarray  # local weights minus global weights, in `names` order
    samples: int
    train_loss: float
    seconds: float
    epsilon: float | None = None  # DP-SGD (train.privacy): what this round's local training spent


class Proximal:
    """A learner whose loss adds FedProx's mu/2 * ||w - w_global||^2 (Li et al. 2020): local steps stay near the
    global model, which limits client drift on skewed data. Everything else is the wrapped learner's."""

    def __init__(self, inner: Learner, anchor: dict[str, torch.Tensor], mu: float) -> None:
        self.__dict__["inner"], self.__dict__["anchor"], self.__dict__["mu"] = inner, anchor, mu

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:  # the loop sets `module` and `precision`
        setattr(self.inner, name, value)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        params = dict(self.inner.module.named_parameters())
        proximal = sum(((params[n] - a) ** 2).sum() for n, a in self.anchor.items())
        return self.inner.loss(batch) + 0.5 * self.mu * proximal


def balance(learner: Learner, data: Any) -> torch.utils.hooks.RemovableHandle:
    """Balanced softmax (Ren et al. 2020; FedLC's calibration, Zhang et al. 2022): while this site trains, its
    logits get log(count + 1) of each class among its own rows added, so a label-skewed site pulls the shared
    weights less towards its majority class (a single-class site barely less: AdamW rescales its small gradients);
    the global model's logits stay unshifted."""
    counts = np.bincount(np.asarray(data.y, dtype=np.int64))

    def shift(_module: torch.nn.Module, _inputs: Any, out: torch.Tensor) -> torch.Tensor:
        full = np.pad(counts, (0, out.shape[-1] - len(counts)))  # classes this site lacks count 0
        return out + torch.log(torch.as_tensor(full + 1.0, dtype=out.dtype, device=out.device))

    return learner.module.register_forward_hook(shift)


def train_locally(
    learner: Learner, names: list[str], weights: np.ndarray, data: Any, empty: Any, config: Config, settings
) -> LocalResult:
    """Load `weights`, run the shared loop for `settings.epochs` on `data` (no validation: the server validates),
    return the update. Optimiser state starts fresh each round, as in FedAvg."""
    from modelyard.training.loop import fit

    aggregate.assign(learner.module, names, weights)
    train = config.train.model_copy(
        update={
            "epochs": settings.epochs,
            "max_steps": None,
            "learning_rate": settings.learning_rate,
            "scheduler": "constant",
            "warmup_ratio": 0.0,
            "early_stopping": None,
            "eval_every": None,
            "checkpoint_every": None,
            "time_limit_s": None,
            "seed": settings.seed,
        }
    )
    if train.privacy is not None:  # DP-SGD at the site, through the shared loop (training/privacy.py)
        share = {"epsilon": train.privacy.epsilon / settings.rounds, "delta": train.privacy.delta / settings.rounds}
        train = train.model_copy(update={"privacy": train.privacy.model_copy(update=share)})
    trained: Learner = learner
    if settings.mu > 0:
        params = dict(learner.module.named_parameters())
        anchor = {n: params[n].detach().clone() for n in names if n in params}  # parameters, not buffers
        trained = Proximal(learner, anchor, settings.mu)
    hook = balance(learner, data) if settings.balanced else None
    try:
        result = fit(
            trained,
            config.model_copy(update={"train": train}),
            PreparedData({"train": data, "validation": empty, "test": empty}),
            quiet=True,
        )
    finally:
        if hook is not None:
            hook.remove()
    loss = next((h["train_loss"] for h in reversed(result.history) if "train_loss" in h), float("nan"))
    delta = aggregate.flatten(learner.module, names) - weights
    spent = result.privacy["epsilon"] if result.privacy else None
    return LocalResult(delta, len(data), float(loss), result.seconds, spent)
