"""A small CTGAN-style conditional GAN for mixed tables (Xu et al., 2019, "Modeling Tabular Data using
Conditional GAN"), written here because the CTGAN package is under the Business Source License.

Kept from CTGAN: a conditional vector naming one level of one discrete column, training-by-sampling (levels
drawn by log-frequency so rare ones are learnt), a generator penalised when it ignores the condition,
Gumbel-softmax outputs for discrete columns, a PacGAN critic (10 rows judged together, against mode collapse)
with the WGAN gradient penalty, and Adam at 2e-4, betas (0.5, 0.9). Changed: continuous columns are represented
by their empirical normal scores (`marginals.Continuous`) instead of mode-specific normalisation; this keeps
point masses (zero balances) exact and needs no Gaussian mixture fit. Two players with two optimisers alternate
steps, which the shared one-loss loop (`training/loop.py`) does not model; this loop reuses its progress bar.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtri
from torch import nn
from torch.nn import functional as F

from modelyard.synthetic.marginals import Continuous, Discrete
from modelyard.training.progress import training_progress

NOISE = 128
HIDDEN = 256
PAC = 10
PENALTY = 10.0
TAU = 0.2


class Residual(nn.Module):
    """CTGAN's generator block: the layer's output concatenated to its input."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(inputs, outputs), nn.BatchNorm1d(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)  # (B, inputs + outputs)


class Generator(nn.Module):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(Residual(inputs, HIDDEN), Residual(inputs + HIDDEN, HIDDEN))
        self.out = nn.Linear(inputs + 2 * HIDDEN, outputs)

    def forward(self, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(torch.cat([noise, cond], dim=1)))  # (B, data width), raw


class Critic(nn.Module):
    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs * PAC, HIDDEN),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.5),
            nn.Linear(HIDDEN, HIDDEN),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.5),
            nn.Linear(HIDDEN, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, x.shape[1] * PAC))  # (B / PAC, 1)


class ConditionalGAN:
    """fit(frame, discrete) then sample(n): the same columns, continuous ones as floats (NaN = missing)."""

    def __init__(self, epochs: int = 100, batch_size: int = 500, seed: int = 0, quiet: bool = True) -> None:
        self.epochs, self.batch = epochs, max(PAC, batch_size // PAC * PAC)
        self.seed, self.quiet = seed, quiet
        self.rng = np.random.default_rng(seed)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, width): normal scores of continuous columns, then one-hot blocks of every discrete variable."""
        parts = []
        for name, marginal in self.continuous.items():
            parts.append(np.clip(marginal.to_normal(frame[name].to_numpy(dtype=float), self.rng), -5, 5)[:, None])
        for key, marginal in self.discrete.items():
            codes = self.codes[key]
            parts.append(np.eye(len(marginal.levels))[codes])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def fit(self, frame: pd.DataFrame, discrete: list[str]) -> ConditionalGAN:
        torch.manual_seed(self.seed)
        self.columns = list(frame.columns)
        self.continuous = {c: Continuous.fit(frame[c].to_numpy(dtype=float)) for c in frame if c not in discrete}
        self.discrete: dict[str, Discrete] = {}
        self.codes: dict[str, np.ndarray] = {}
        for name in frame.columns:  # every discrete column, and the is-missing flag of continuous ones
            if name in discrete:
                values = frame[name].to_numpy()
            elif self.continuous[name].missing > 0:
                values = np.where(frame[name].isna(), "1", "0").astype(object)
            else:
                continue
            key = name if name in discrete else f"{name}\x00missing"
            self.discrete[key] = Discrete.fit(values)
            self.codes[key] = self.discrete[key].codes(values)
        data = torch.from_numpy(self._encode(frame))
        self.blocks, start = [], len(self.continuous)
        for marginal in self.discrete.values():
            self.blocks.append((start, len(marginal.levels)))
            start += len(marginal.levels)
        self.cond_width = sum(width for _, width in self.blocks)
        self.generator = Generator(NOISE + self.cond_width, data.shape[1])
        critic = Critic(data.shape[1] + self.cond_width)
        self._train(data, critic)
        return self

    def _condition(self, n: int, log_frequency: bool) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """One discrete variable per row and a level of it: the one-hot condition, the variables, the levels."""
        cond = np.zeros((n, self.cond_width), np.float32)
        if not self.blocks:
            return torch.from_numpy(cond), np.zeros(n, int), np.zeros(n, int)
        keys = list(self.discrete)
        variables = self.rng.integers(0, len(keys), n)
        levels = np.zeros(n, int)
        offsets = np.cumsum([0] + [w for _, w in self.blocks])
        for v in np.unique(variables):
            counts = np.bincount(self.codes[keys[v]], minlength=self.blocks[v][1]).astype(float)
            weights = np.log1p(counts) if log_frequency else counts
            rows = variables == v
            levels[rows] = self.rng.choice(len(counts), int(rows.sum()), p=weights / weights.sum())
            cond[np.flatnonzero(rows), offsets[v] + levels[rows]] = 1.0
        return torch.from_numpy(cond), variables, levels

    def _activate(self, raw: torch.Tensor, hard: bool) -> torch.Tensor:
        parts = [raw[:, : len(self.continuous)]]
        for start, width in self.blocks:
            parts.append(F.gumbel_softmax(raw[:, start : start + width], tau=TAU, hard=hard))
        return torch.cat(parts, dim=1)

    def _condition_loss(self, raw: torch.Tensor, variables: np.ndarray, levels: np.ndarray) -> torch.Tensor:
        """Cross-entropy of the generator's logits for the conditioned variable against the asked level."""
        if not self.blocks:
            return raw.new_zeros(())
        loss = raw.new_zeros(())
        for v in np.unique(variables):
            rows = torch.from_numpy(np.flatnonzero(variables == v))
            start, width = self.blocks[v]
            target = torch.from_numpy(levels[variables == v])
            loss = loss + F.cross_entropy(raw[rows, start : start + width], target, reduction="sum")
        return loss / len(variables)

    def _real_rows(self, variables: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """A real row holding each asked level (training-by-sampling)."""
        keys, out = list(self.discrete), np.empty(len(variables), int)
        for i, (v, level) in enumerate(zip(variables, levels, strict=True)):
            pool = self.by_level[keys[v]][level]
            out[i] = pool[self.rng.integers(0, len(pool))]
        return out

    def _train(self, data: torch.Tensor, critic: Critic) -> None:
        self.by_level = {k: [np.flatnonzero(c == i) for i in range(c.max() + 1)] for k, c in self.codes.items()}
        options = {"lr": 2e-4, "betas": (0.5, 0.9), "weight_decay": 1e-6}
        g_opt = torch.optim.Adam(self.generator.parameters(), **options)
        d_opt = torch.optim.Adam(critic.parameters(), **options)
        steps = max(1, self.epochs * len(data) // self.batch)
        start, progress = time.perf_counter(), training_progress(self.quiet)
        with progress:
            task = progress.add_task("ctgan", total=steps, loss=0.0, speed=0.0)
            for step in range(1, steps + 1):
                cond, variables, levels = self._condition(self.batch, log_frequency=True)
                if self.blocks:
                    real = data[self._real_rows(variables, levels)]
                else:
                    real = data[torch.from_numpy(self.rng.integers(0, len(data), self.batch))]
                fake = self._activate(self.generator(torch.randn(self.batch, NOISE), cond), hard=False)
                real_in, fake_in = torch.cat([real, cond], 1), torch.cat([fake.detach(), cond], 1)
                d_loss = critic(fake_in).mean() - critic(real_in).mean() + self._penalty(critic, real_in, fake_in)
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                cond, variables, levels = self._condition(self.batch, log_frequency=True)
                raw = self.generator(torch.randn(self.batch, NOISE), cond)
                fake_in = torch.cat([self._activate(raw, hard=False), cond], 1)
                g_loss = -critic(fake_in).mean() + self._condition_loss(raw, variables, levels)
                g_opt.zero_grad(set_to_none=True)
                g_loss.backward()
                g_opt.step()
                speed = step * self.batch / (time.perf_counter() - start)
                progress.update(task, completed=step, loss=g_loss.item(), speed=speed)

    @staticmethod
    def _penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP: the critic's gradient norm pulled to 1 on points between real and fake (per pack of rows)."""
        alpha = torch.rand(real.shape[0] // PAC, 1, 1).expand(-1, PAC, real.shape[1]).reshape(real.shape)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grads = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
        return PENALTY * ((grads.reshape(-1, PAC * real.shape[1]).norm(2, dim=1) - 1) ** 2).mean()

    def _calibrated(self, scores: np.ndarray) -> np.ndarray:
        """The generated scores' ranks as standard normal quantiles: the GAN decides the order of the rows (the
        dependence), the real column's distribution the values, which a GAN trained for minutes only approaches."""
        ranks = np.argsort(np.argsort(scores + 1e-9 * self.rng.standard_normal(len(scores))))
        return ndtri((ranks + 0.5) / len(scores))

    @torch.no_grad()
    def sample(self, n: int) -> pd.DataFrame:
        self.generator.eval()
        cond, _, _ = self._condition(n, log_frequency=False)
        out = self._activate(self.generator(torch.randn(n, NOISE), cond), hard=True).numpy()
        self.generator.train()
        frame: dict[str, np.ndarray] = {}
        for i, (name, marginal) in enumerate(self.continuous.items()):
            frame[name] = marginal.from_normal(self._calibrated(out[:, i]))
        for (start, width), (key, marginal) in zip(self.blocks, self.discrete.items(), strict=True):
            values = marginal.from_codes(out[:, start : start + width].argmax(1))
            if key.endswith("\x00missing"):
                name = key.split("\x00")[0]
                frame[name] = np.where(values == "1", np.nan, frame[name])
            else:
                frame[key] = values
        return pd.DataFrame(frame)[self.columns]
