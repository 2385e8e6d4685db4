"""What the server does with the clients' updates: weighted averaging (FedAvg), secure aggregation with pairwise
additive masks, and the client-side differential-privacy step (clip + Gaussian noise) with its accountant.

Updates travel as one flat float32 vector (the trainable parameters in `names` order), so masking, clipping and
averaging are plain vector arithmetic whatever the model.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

SCALE_BITS = 24  # fixed-point precision of masked updates: 2^-24 ~ 6e-8 per weighted coordinate


def trainable_names(module: torch.nn.Module) -> list[str]:
    """The state a federation shares, sorted: trainable parameters and floating-point buffers (batch norm's
    running statistics, averaged like the weights as in FedAvg). Frozen parameters never change and never travel.
    Sorted, so a site whose copy was rebuilt by another class with the same names (a bundle's plain-PyTorch
    BERT) agrees on the layout."""
    params = [name for name, p in module.named_parameters() if p.requires_grad]
    buffers = [name for name, b in module.named_buffers() if b.is_floating_point()]
    return sorted(params + buffers)


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def flatten(module: torch.nn.Module, names: list[str]) -> np.ndarray:
    tensors = _tensors(module)
    return torch.cat([tensors[n].detach().float().reshape(-1) for n in names]).numpy().astype(np.float32)


def assign(module: torch.nn.Module, names: list[str], flat: np.ndarray) -> None:
    """Copy a flat vector into the named parameters and buffers, in place."""
    tensors = _tensors(module)
    vector = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
    offset = 0
    with torch.no_grad():
        for name in names:
            p = tensors[name]
            p.copy_(vector[offset : offset + p.numel()].view_as(p).to(p.dtype))
            offset += p.numel()
    if offset != len(vector):
        raise ValueError(f"update has {len(vector)} values, the model's shared state {offset}")


def parameter_mask(module: torch.nn.Module, names: list[str]) -> np.ndarray:
    """True where the flat vector holds a parameter, False for buffers (batch norm's running statistics)."""
    tensors, params = _tensors(module), dict(module.named_parameters())
    return np.concatenate([np.full(tensors[n].numel(), n in params) for n in names])


@dataclass
class ServerOptimizer:
    """How the sites' average update moves the global model (Reddi et al. 2021, "Adaptive Federated
    Optimization"): `sgd` at rate 1 is FedAvg (McMahan et al. 2017), `momentum` is FedAvgM (Hsu et al. 2019),
    `adam` is FedAdam. Buffers (batch norm's running statistics) are always plainly averaged: a momentum or
    adaptive step could push a running variance below zero."""

    kind: Literal["sgd", "momentum", "adam"]
    lr: float
    momentum: float
    parameters: np.ndarray  # parameter_mask: where the server's optimiser applies
    first: np.ndarray | None = None  # momentum buffer (momentum) or first moment (adam)
    second: np.ndarray | None = None  # adam's second moment
    tau: float = 1e-3  # adam's adaptivity floor (Reddi et al.'s tau)
    beta2: float = 0.99

    def step(self, weights: np.ndarray, weighted_sum: np.ndarray, samples: int) -> np.ndarray:
        """The next global weights from sum_k n_k * delta_k over the reporting sites (renormalised by their n)."""
        update = weighted_sum.astype(np.float64) / max(1, samples)
        move = update.copy()
        if self.kind == "momentum":
            self.first = update if self.first is None else self.momentum * self.first + update
            move = self.lr * self.first
        elif self.kind == "adam":
            zero = np.zeros_like(update)
            self.first = self.momentum * (zero if self.first is None else self.first) + (1 - self.momentum) * update
            self.second = self.beta2 * (zero if self.second is None else self.second) + (1 - self.beta2) * update**2
            move = self.lr * self.first / (np.sqrt(self.second) + self.tau)
        elif self.lr != 1.0:
            move = self.lr * update
        move = np.where(self.parameters, move, update)
        return (weights.astype(np.float64) + move).astype(np.float32)


# differential privacy at the client ---------------------------------------------------------------------------
def clip_and_noise(delta: np.ndarray, clip: float, noise_multiplier: float, rng: np.random.Generator) -> np.ndarray:
    """The Gaussian mechanism on one client's update: L2-clip to `clip`, add N(0, (noise_multiplier*clip)^2)."""
    norm = float(np.linalg.norm(delta))
    clipped = delta * min(1.0, clip / max(norm, 1e-12))
    return (clipped + rng.normal(0.0, noise_multiplier * clip, size=delta.shape)).astype(np.float32)


def dp_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """(epsilon, delta) of a client's released updates over `rounds` rounds, for its whole local data set (so for
    any one of its records): Gaussian mechanism with L2 sensitivity 2*clip (any clipped update can be replaced by
    any other) and noise std noise_multiplier*clip, composed in Renyi DP and converted (Mironov 2017). No
    subsampling amplification is claimed: every client takes part in every round."""
    best = math.inf
    for alpha in [1 + x / 10 for x in range(1, 100)] + list(range(12, 257)):
        rdp = rounds * alpha * 2.0 / noise_multiplier**2  # alpha * sensitivity^2 / (2 sigma^2), sensitivity 2
        best = min(best, rdp + math.log(1 / delta) / (alpha - 1))
    return best


# secure aggregation ---------------------------------------------------------------------------------------------
def key_pair() -> tuple[object, bytes]:
    """An X25519 key pair; the public half goes to the server, which hands every client the others' halves."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = X25519PrivateKey.generate()
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def shared_seed(private: object, peer_public: bytes, round_: int, attempt: int = 0) -> int:
    """The seed two clients agree on without the server learning it (X25519 Diffie-Hellman), fresh each round
    and each attempt at it (a retried round never reuses masks)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    secret = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    salt = round_.to_bytes(8, "big") + attempt.to_bytes(8, "big")
    return int.from_bytes(hashlib.sha256(secret + salt).digest()[:8], "big")


def quantise(vector: np.ndarray) -> np.ndarray:
    """Fixed point in the ring of integers mod 2^64, where masks cancel exactly (floats would not)."""
    return np.round(vector.astype(np.float64) * 2.0**SCALE_BITS).astype(np.int64).view(np.uint64)


def dequantise(ring: np.ndarray) -> np.ndarray:
    return ring.view(np.int64).astype(np.float64) / 2.0**SCALE_BITS


def mask(vector: np.ndarray, me: int, seeds: dict[int, int]) -> np.ndarray:
    """`vector` (quantised) plus one pseudo-random mask per other client: added towards higher ids, subtracted
    towards lower ones, so the masks cancel in the sum of all clients' vectors and the server sees only that sum.

    `seeds` maps every other client id to the seed shared with it."""
    out = quantise(vector)
    for peer, seed in seeds.items():
        noise = np.random.default_rng(seed).integers(0, 2**64, size=out.shape, dtype=np.uint64, endpoint=False)
        out = out + noise if peer > me else out - noise  # uint64 arithmetic wraps: the ring Z/2^64
    return out


def unmask_sum(masked: list[np.ndarray]) -> np.ndarray:
    """The sum of every client's vector from their masked vectors (all of them: a missing one leaves noise)."""
    total = np.zeros_like(masked[0])
    for vector in masked:
        total = total + vector
    return dequantise(total)
