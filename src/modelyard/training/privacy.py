"""Differentially private training (DP-SGD) for the shared loop, through Opacus.

`train.privacy` turns every step of `training.loop.fit` into a DP-SGD step: batches drawn by Poisson sampling
(each row independently with probability q = batch_size / rows, the sampling the accountant assumes),
per-example gradients (Opacus' GradSampleModule) clipped to `max_grad_norm`, Gaussian noise whose multiplier is
solved for the target (epsilon, delta) over the planned number of steps (RDP accountant), and the spent
(epsilon, delta) of the steps actually taken reported at the end. What cannot be accounted for is refused with a
ConfigError, by `validate` as by `train`.

The noise and the Poisson batches draw from generators seeded from the OS's entropy, never from `train.seed`: the
seed is published in the bundle's config.yaml, and noise an adversary can regenerate protects nothing. A private
run is therefore not bit-reproducible; its initialisation and dropout still follow `train.seed`.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from modelyard.config import Config, PrivacyConfig
from modelyard.errors import ConfigError

ACCOUNTANT = "rdp"
# RDP orders: Opacus' defaults stop at 63, where a budget as loose as epsilon 8 often still has its optimum (Opacus
# then warns); the longer tail only tightens the bound, never loosens it
ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + list(range(64, 257, 4))
HINT = "see docs/privacy_training.md for what DP-SGD supports, or remove train.privacy"


@runtime_checkable
class SupportsPrivateTraining(Protocol):
    """A task that can train with DP-SGD for some configs; it names what stands in the way for the others."""

    def privacy_problems(self, config: Config) -> list[str]:
        """Why this config cannot be trained with DP-SGD (each naming the config field); [] when it can."""
        ...

    def private_train_defaults(self, config: Config) -> dict[str, Any]:
        """The train settings (epochs, batch_size) the privately trained model takes where the config is empty."""
        ...


def check(config: Config, task: Any, rows: int) -> None:
    """Refuse a private config whose training could not be accounted for; `validate` and `train` both call this.
    With `rows`, the run is also planned as `train` will plan it (batch below the rows, a reachable epsilon)."""
    settings = config.train.privacy
    if settings is None:
        return
    problems = []
    if config.train.gradient_accumulation != 1:
        problems.append(
            f"train.gradient_accumulation is {config.train.gradient_accumulation}: a DP-SGD step is one Poisson "
            "batch; raise train.batch_size instead"
        )
    if config.train.precision == "bf16":
        problems.append("train.precision bf16: per-example gradients are computed in fp32 (use auto or fp32)")
    noise = config.data.label_noise
    if noise is not None and noise.action != "report":
        # which rows train on (or how much) would be chosen by models fitted on every row without noise, and the
        # accountant would only see the rows that were kept
        problems.append(
            f"data.label_noise.action {noise.action} picks the training rows with non-private models fitted on all "
            "of them; use action report (it only lists suspects) or remove data.label_noise"
        )
    if rows and settings.delta >= 1.0 / rows:
        problems.append(
            f"train.privacy.delta {settings.delta:g} is not below 1 / {rows} training rows: a delta that large "
            "allows publishing a whole example outright"
        )
    if isinstance(task, SupportsPrivateTraining):
        problems += task.privacy_problems(config)
    else:
        problems.append(f"task {config.task} does not train with DP-SGD")
    if problems:
        raise ConfigError("train.privacy cannot be accounted for: " + "; ".join(problems), HINT)
    if rows:
        defaults = task.private_train_defaults(config)
        batch_size = config.train.batch_size or defaults["batch_size"]
        epochs = config.train.epochs or defaults["epochs"]
        planned = config.train.max_steps or math.ceil(rows / batch_size) * epochs
        PrivateTraining.plan(settings, rows, batch_size, planned, 1)


def refuse_processes(config: Config, processes: int) -> None:
    """DP-SGD runs in one process: Poisson sampling and the noise are drawn once per step, not per rank."""
    if config.train.privacy is not None:
        _single_process(processes)


def _single_process(processes: int) -> None:
    if processes > 1:
        raise ConfigError(
            f"train.privacy: DP-SGD runs in one process here, not {processes} (--nproc / torchrun)",
            "train without --nproc",
        )


def module_problems(module: nn.Module) -> list[str]:
    """Layers whose per-example gradients DP-SGD cannot compute or whose outputs mix examples (batch norm)."""
    from opacus.grad_sample import GradSampleModule

    problems = [
        f"{name} is a {type(m).__name__}: batch norm mixes the examples of a batch (use layer norm)"
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    if not problems:
        problems += [str(e) for e in GradSampleModule.validate(module, strict=False)]
    return problems


def unwrap(model: nn.Module) -> nn.Module:
    """The learner's own module inside Opacus' per-example-gradient wrapper (itself when not wrapped)."""
    from opacus.grad_sample import GradSampleModule

    return model._module if isinstance(model, GradSampleModule) else model


def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """The RDP accountant's epsilon after `steps` Poisson-subsampled Gaussian steps."""
    from opacus.accountants import RDPAccountant

    if steps == 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta, alphas=ALPHAS))


def secret_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from the OS's entropy pool, so nothing saved with the model (train.seed) can replay it."""
    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


class PoissonBatchSampler:
    """Each step takes every row independently with probability `sample_rate`: batch sizes vary and a step may be
    empty (the loop then takes a noise-only step). Which rows a step took must stay secret (the accountant's
    amplification by sampling assumes it), so the sampler's key comes from OS entropy, not from `train.seed`; an
    epoch iterated twice in one run still yields the same batches."""

    def __init__(self, rows: int, batch_size: int, steps_per_epoch: int) -> None:
        self.rows, self.batch_size, self.steps, self.epoch = rows, batch_size, steps_per_epoch, 0
        self.sample_rate = batch_size / rows  # batch_size: the expected size, which Accelerate asks for
        self._key = secrets.randbits(62)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self._key + self.epoch)
        for _ in range(self.steps):
            yield torch.nonzero(torch.rand(self.rows, generator=generator) < self.sample_rate).flatten().tolist()


@dataclass
class PrivateTraining:
    """One private run's plan (sample rate, steps, noise) and the Opacus pieces the loop steps through."""

    settings: PrivacyConfig
    batch_size: int
    sample_rate: float
    planned_steps: int
    noise_multiplier: float
    module: nn.Module | None = None

    @classmethod
    def plan(cls, settings: PrivacyConfig, rows: int, batch_size: int, steps: int, processes: int) -> PrivateTraining:
        """Solve the noise multiplier that spends exactly the target budget over `steps` steps."""
        from opacus.accountants.utils import get_noise_multiplier

        _single_process(processes)
        if batch_size >= rows:
            raise ConfigError(
                f"train.privacy: train.batch_size {batch_size} is not below the {rows} training rows; "
                "DP-SGD samples batches from the rows"
            )
        rate = batch_size / rows
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the search's first, far too small, noise levels
                sigma = get_noise_multiplier(
                    target_epsilon=settings.epsilon,
                    target_delta=settings.delta,
                    sample_rate=rate,
                    steps=steps,
                    accountant=ACCOUNTANT,
                    alphas=ALPHAS,
                )
        except ValueError as err:
            raise ConfigError(f"train.privacy.epsilon {settings.epsilon:g} cannot be reached: {err}") from None
        return cls(settings, batch_size, rate, steps, float(sigma))

    def sampler(self, rows: int, steps_per_epoch: int) -> PoissonBatchSampler:
        return PoissonBatchSampler(rows, self.batch_size, steps_per_epoch)

    @staticmethod
    def collate(collate: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
        """The learner's collate, answering None for an empty Poisson batch (which it could not batch)."""
        return lambda items: collate(items) if items else None

    def wrap(
        self, module: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device | str
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Per-example gradients on `module`; clipping and noise (drawn on `device`, where the gradients are) in the
        optimiser step. Refuses unsupported layers."""
        from opacus.grad_sample import GradSampleModule
        from opacus.optimizers import DPOptimizer

        # frozen embeddings give the first trainable layer inputs without gradients; its hook still fires
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")
        problems = module_problems(module)
        if problems:
            raise ConfigError("train.privacy cannot be accounted for: " + "; ".join(problems), HINT)
        self.module = GradSampleModule(module, batch_first=True, loss_reduction="mean", strict=True)
        dp_optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.settings.max_grad_norm,
            expected_batch_size=self.batch_size,
            loss_reduction="mean",
            generator=secret_generator(device),  # without one, Opacus draws from the global RNG train.seed seeds
        )
        return self.module, dp_optimizer

    def empty_batch_loss(self) -> torch.Tensor:
        """An empty Poisson batch still takes a step: zero per-example gradients, so the optimiser adds only
        noise (what the accountant counts). The loss returned has nothing to back-propagate."""
        for p in self.module.parameters():
            if p.requires_grad:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        return torch.zeros((), requires_grad=True)

    def spent(self, steps: int) -> dict[str, Any]:
        """What the steps taken spent, for metrics.json, the model card and the tracking run."""
        delta = self.settings.delta
        return {
            "epsilon": round(epsilon_spent(self.noise_multiplier, self.sample_rate, steps, delta), 4),
            "delta": delta,
            "target_epsilon": self.settings.epsilon,
            "max_grad_norm": self.settings.max_grad_norm,
            "noise_multiplier": round(self.noise_multiplier, 5),
            "sample_rate": round(self.sample_rate, 6),
            "expected_batch_size": self.batch_size,
            "steps": steps,
            "planned_steps": self.planned_steps,
            "sampling": "poisson",
            "accountant": ACCOUNTANT,
        }

    def close(self) -> None:
        """Detach the per-example-gradient hooks, so the trained module predicts and saves like any other."""
        if self.module is not None:
            self.module.remove_hooks()
            for p in self.module.parameters():
                p.grad_sample = None
