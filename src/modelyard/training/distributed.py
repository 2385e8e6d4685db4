"""Data-parallel training on PyTorch's own engine: `train --nproc N` re-runs itself under torchrun.

Each process trains on a slice of every batch (`train.batch_size` is the global batch, so results do not depend on
the number of processes); gloo on CPUs, NCCL on GPUs; only rank 0 writes the bundle and logs the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Launch:
    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def needed(self) -> bool:
        """True in the launching process; False inside a rank (torchrun sets LOCAL_RANK) or for one process."""
        return (self.nproc > 1 or self.nnodes > 1) and "LOCAL_RANK" not in os.environ


def torchrun(launch: Launch, argv: list[str]) -> int:
    """Run `modelyard ARGV` in `nproc` processes on this node and wait for them; returns the exit code."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={launch.nproc}",
        f"--nnodes={launch.nnodes}",
        f"--node-rank={launch.node_rank}",
        f"--master-addr={launch.master_addr}",
        f"--master-port={launch.master_port}",
        "-m",
        "modelyard",
        *argv,
    ]
    env = dict(os.environ)
    cores = os.cpu_count() or 1
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // launch.nproc)))
    return subprocess.call(command, env=env)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """A barrier across ranks (no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
