"""Data-parallel training on PyTorch's own engine: `train --nproc N` re-runs itself under torchrun's agent.

Each process trains on a slice of every batch (`train.batch_size` is the global batch, so results do not depend on
the number of processes); gloo on CPUs, NCCL on GPUs; only rank 0 writes the bundle and logs the run.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.cores import usable_cores
from modelyard.errors import UserError
from modelyard.fsutil import atomic_write_json
from modelyard.home import home

ERRORS_ENV = "MODELYARD_RANK_ERRORS"  # the folder where a failing rank records its error for the launcher
LAUNCHER_ENV = "MODELYARD_LAUNCHER_PID"  # set in the ranks of `train --nproc`: their launcher, which holds the lock
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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


def torchrun(launch: Launch, argv: list[str], debug: bool = False) -> None:
    """Run `modelyard ARGV` in `nproc` processes on this node under torchrun's agent (in this process) and wait.

    A rank that fails records its error (`record_rank_failure`); the run then ends as one UserError naming the
    rank and that error, instead of every rank's traceback followed by the agent's own."""
    import torch
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from modelyard.precision import device

    if device().type == "cuda" and launch.nproc > torch.cuda.device_count():
        raise UserError(
            f"--nproc {launch.nproc} asks for more processes than the {torch.cuda.device_count()} visible GPU(s): "
            "NCCL runs one process per GPU",
            f"use --nproc {torch.cuda.device_count()}, or MODELYARD_DEVICE=cpu for CPU processes (gloo)",
        )
    if launch.node_rank == 0:  # where the agents meet: a taken port ends the run in one line, not torch's traceback
        check_master_port(launch)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // launch.nproc)))
    if not debug:
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # it logs each rank's exit
    config = LaunchConfig(
        min_nodes=launch.nnodes,
        max_nodes=launch.nnodes,
        nproc_per_node=launch.nproc,
        run_id="modelyard",
        rdzv_backend="static",
        rdzv_endpoint=f"{launch.master_addr}:{launch.master_port}",
        rdzv_configs={"rank": launch.node_rank},
        max_restarts=0,
    )
    with tempfile.TemporaryDirectory(prefix="rank-errors-", dir=home()) as folder:  # local state stays there
        os.environ[ERRORS_ENV] = folder
        os.environ[LAUNCHER_ENV] = str(os.getpid())
        try:
            elastic_launch(config, sys.executable)("-m", "modelyard", *argv)
        except ChildFailedError as failed:
            raise _rank_failure(failed.failures, Path(folder), launch.nproc * launch.nnodes) from None
        except SignalException:  # Ctrl-C or SIGTERM: the agent stopped the ranks
            raise KeyboardInterrupt from None
        finally:
            del os.environ[LAUNCHER_ENV]  # a later run in this process is no rank


def die_with_launcher() -> None:
    """Inside a rank of `train --nproc`: have Linux send this process SIGTERM when its launcher dies. A launcher
    killed with SIGKILL cannot stop its ranks, which would otherwise finish and write the bundle after the user
    ended the run (and beside a `--resume` of it). A launcher already gone ends the rank at once."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher or "LOCAL_RANK" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(launcher):  # it died before the prctl: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


def holds_output_lock() -> bool:
    """Whether this process should lock the run's --output: a one-process run and rank 0 of a torchrun started
    elsewhere do; the ranks of `train --nproc` do not (their launcher holds the lock for them)."""
    return LAUNCHER_ENV not in os.environ and is_main_process()


def check_master_port(launch: Launch) -> None:
    """Refuse a --master-port another process listens on. Rank 0's agent listens on every address of its machine,
    so the probe binds them all; an address not of this machine is left to torch to report."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict, as for the agent
        try:
            probe.bind(("", launch.master_port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:  # e.g. a privileged port: torch says why
                return
            raise UserError(
                f"cannot listen on {launch.master_addr}:{launch.master_port} (address in use): "
                "choose another --master-port"
            ) from None


def record_rank_failure(error: BaseException) -> bool:
    """Inside a rank of `train --nproc`: write `error` where the launcher reads it; False outside a rank."""
    folder = os.environ.get(ERRORS_ENV)
    if not folder or "LOCAL_RANK" not in os.environ:
        return False
    record = {"time": time.time(), "type": type(error).__name__, "message": str(error)}
    if isinstance(error, UserError):
        record.update(message=error.message, hint=error.hint, user_error=True)
    else:
        record["where"] = _where(error)
    atomic_write_json(Path(folder) / f"rank-{os.environ.get('RANK', '0')}.json", record)
    return True


def _where(error: BaseException) -> str:
    """The innermost line of our own code the error passed through (else the innermost line): `loop.py:250 in fit`."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if f"{os.sep}modelyard{os.sep}" in f.filename] or frames
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}" if ours else ""


def _rank_failure(failures: dict, folder: Path, world: int) -> UserError:
    """The root cause among the failed ranks: one killed by a signal without a word (e.g. out of memory: its peers
    then fail only because it left; SIGTERM is the agent stopping the others), else the first error a rank
    recorded (later ones are usually its peers losing their connection to it)."""
    records = {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("rank-*.json")}
    killed = {
        rank: failure
        for rank, failure in failures.items()
        if rank not in records and failure.exitcode < 0 and failure.signal_name() != "SIGTERM"
    }
    if records and not killed:
        rank, record = min(records.items(), key=lambda item: item[1]["time"])
        if record.get("user_error"):
            return UserError(f"rank {rank} of {world}: {record['message']}", record.get("hint"))
        where = f" (at {record['where']})" if record.get("where") else ""
        return UserError(
            f"rank {rank} of {world} failed: {record['type']}: {record['message']}{where}",
            "run again with --debug for every rank's traceback",
        )
    rank, failure = min((killed or failures).items())
    signal = failure.signal_name() if failure.exitcode < 0 else None
    how = f"was killed by {signal}" if signal else f"exited with code {failure.exitcode}"
    hint = "out of memory? try a smaller train.batch_size or fewer --nproc" if signal == "SIGKILL" else None
    return UserError(f"rank {rank} of {world} {how} (process {failure.pid})", hint)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """A barrier across ranks (no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def evaluate(learner: Any, data: Any) -> dict[str, Any]:
    """`learner.evaluate(data)`, split among the ranks when there are several: each runs its share of the batches
    (`ShardedEvaluation`), rank 0 scores all outputs in unit order, every rank gets the metrics (early stopping
    and best-weight choices must agree). Learners without the capability evaluate everything on every rank."""
    import numpy as np
    import torch.distributed as dist

    from modelyard.protocols import ShardedEvaluation

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if world == 1 or not isinstance(learner, ShardedEvaluation):
        return learner.evaluate(data)
    rank = dist.get_rank()
    parts: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(learner.eval_outputs(data, (rank, world)), parts, dst=0)
    metrics: list[Any] = [None]
    if parts is not None:
        units = np.concatenate([p[0] for p in parts])
        outputs = np.concatenate([p[1] for p in parts])
        metrics[0] = learner.eval_score(data, outputs[np.argsort(units, kind="stable")])
    dist.broadcast_object_list(metrics, src=0)
    return metrics[0]
