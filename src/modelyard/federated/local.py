"""One site's part of a round: start from the global weights, train a few local epochs on its own rows with the
shared training loop, and hand back the change (FedAvg), pulled towards the global weights when FedProx's mu > 0,
or with SCAFFOLD's drift correction and the change of the site's control variate.
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
    scaffold: bool = False  # SCAFFOLD: correct each gradient by c - c_i and return the change of c_i
    optimizer: str = "adamw"  # federated.local_optimizer: the local steps' optimiser (adamw | sgd)
    steps: int | None = None  # federated.local_steps: optimiser steps in place of `epochs` full passes


@dataclass
class LocalResult:
    delta: np.ndarray  # local weights minus global weights, in `names` order
    samples: int
    train_loss: float
    seconds: float
    epsilon: float | None = None  # DP-SGD (train.privacy): what this round's local training spent
    control_delta: np.ndarray | None = None  # SCAFFOLD: the site's new control variate minus its old one


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


class Controlled:
    """A learner whose gradient gets SCAFFOLD's correction c - c_i (Karimireddy et al. 2020): the loss adds
    <c - c_i, w> minus its own value, so the loss reported is unchanged and every backward pass adds exactly
    c - c_i to each parameter's gradient, before clipping and the optimiser step. It also sums the gradients the
    loop sees, from which `new_control` gives the site's next control variate."""

    def __init__(self, inner: Learner, correction: dict[str, torch.Tensor]) -> None:
        self.__dict__["inner"], self.__dict__["correction"] = inner, correction
        params = dict(inner.module.named_parameters())
        self.__dict__["sums"] = {n: torch.zeros_like(c) for n, c in correction.items()}
        self.__dict__["hooks"] = [params[n].register_hook(self._summer(n)) for n in correction]

    def _summer(self, name: str):
        def add(grad: torch.Tensor) -> None:
            self.sums[name] = self.sums[name].to(grad.device) + grad.detach().float()

        return add

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        params = dict(self.inner.module.named_parameters())
        linear = sum((params[n] * c.to(params[n].device)).sum() for n, c in self.correction.items())
        return self.inner.loss(batch) + linear - linear.detach()

    def new_control(self, steps: int) -> dict[str, torch.Tensor]:
        """Option II's c_i+ = c_i - c + (x - y_i) / (K * lr), in the form that holds for any optimiser: the mean
        over the K local steps of the site's own minibatch gradients (the corrected gradients the loop saw, less
        the correction). With plain SGD steps and no clipping the two are equal (a unit test checks it); with
        AdamW the formula's (x - y_i) / (K * lr) would be in Adam's normalised units, not gradients."""
        return {n: self.sums[n].cpu() / max(1, steps) - c for n, c in self.correction.items()}

    def close(self) -> None:
        for hook in self.hooks:
            hook.remove()


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
    learner: Learner,
    names: list[str],
    weights: np.ndarray,
    data: Any,
    empty: Any,
    config: Config,
    settings,
    control: tuple[np.ndarray, np.ndarray] | None = None,
) -> LocalResult:
    """Load `weights`, run the shared loop for `settings.epochs` on `data` (no validation: the server validates),
    return the update. Optimiser state starts fresh each round, as in FedAvg. `control` is SCAFFOLD's (server c,
    this site's c_i), flat in `names` order (zero at buffers)."""
    from modelyard.training.loop import fit

    aggregate.assign(learner.module, names, weights)
    train = config.train.model_copy(
        update={
            "epochs": settings.epochs,
            "max_steps": settings.steps,
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
    if settings.scaffold:
        server, own = control if control is not None else (np.zeros_like(weights), np.zeros_like(weights))
        correction = _unflatten(learner.module, names, server.astype(np.float64) - own)
        trained = Controlled(learner, correction)
    hook = balance(learner, data) if settings.balanced else None
    try:
        result = fit(
            trained,
            config.model_copy(update={"train": train}),
            PreparedData({"train": data, "validation": empty, "test": empty}),
            quiet=True,
            optimizer=settings.optimizer,
        )
    finally:
        if hook is not None:
            hook.remove()
        if isinstance(trained, Controlled):
            trained.close()
    loss = next((h["train_loss"] for h in reversed(result.history) if "train_loss" in h), float("nan"))
    delta = aggregate.flatten(learner.module, names) - weights
    spent = result.privacy["epsilon"] if result.privacy else None
    out = LocalResult(delta, len(data), float(loss), result.seconds, spent)
    if isinstance(trained, Controlled):
        new = _flat(learner.module, names, trained.new_control(result.steps))
        out.control_delta = new - own.astype(np.float32)
    return out


def _slices(module: torch.nn.Module, names: list[str]) -> tuple[dict[str, slice], int]:
    """Where each parameter lies in the flat vector of `names` (buffers take room but are not listed), and its
    length."""
    params = dict(module.named_parameters())
    sizes = {**dict(module.named_buffers()), **params}
    out, offset = {}, 0
    for name in names:
        if name in params:
            out[name] = slice(offset, offset + sizes[name].numel())
        offset += sizes[name].numel()
    return out, offset


def _unflatten(module: torch.nn.Module, names: list[str], flat: np.ndarray) -> dict[str, torch.Tensor]:
    """The parameters' pieces of a flat vector in `names` order, as float32 tensors shaped like them."""
    params = dict(module.named_parameters())
    return {
        name: torch.from_numpy(np.ascontiguousarray(flat[where], dtype=np.float32)).view_as(params[name])
        for name, where in _slices(module, names)[0].items()
    }


def _flat(module: torch.nn.Module, names: list[str], pieces: dict[str, torch.Tensor]) -> np.ndarray:
    """`pieces` (parameters only) as a flat float32 vector in `names` order, zero at buffers."""
    where, length = _slices(module, names)
    out = np.zeros(length, dtype=np.float32)
    for name, piece in pieces.items():
        out[where[name]] = piece.detach().cpu().reshape(-1).numpy()
    return out
