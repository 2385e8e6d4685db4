"""Length-bucketed, seeded batches: similar lengths share a batch so padding (and wasted compute) stays small."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shuffle, cut into pools of `pool` batches, sort each pool by length, batch it, shuffle the batches."""

    def __init__(self, lengths: list[int] | None, size: int, batch_size: int, seed: int, pool: int = 50) -> None:
        self.lengths = np.asarray(lengths) if lengths is not None else None
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.size + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(self.size)
        batches = []
        chunk = self.batch_size * self.pool
        for start in range(0, self.size, chunk):
            part = order[start : start + chunk]
            if self.lengths is not None:
                part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size)]
        for i in rng.permutation(len(batches)):
            yield batches[i]
