"""A training run owns its --output while it lives, and the ranks of `train --nproc` end with their launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import write_config

from modelyard.errors import UserError
from modelyard.pipeline import output_lock
from modelyard.training import distributed


def test_a_second_training_run_on_an_output_a_live_run_holds_is_refused(banking_slice, tmp_path):
    import modelyard

    output = tmp_path / "bundle"
    with output_lock(output), pytest.raises(UserError, match=f"another run is writing {output}") as refused:
        modelyard.train(write_config(banking_slice, "tfidf-linear"), output=output, resume=True, quiet=True)
    assert f"pid {os.getpid()}" in refused.value.message
    assert not (output / "checkpoints").exists()


def test_the_lock_is_gone_with_the_run_that_held_it(tmp_path):
    with output_lock(tmp_path / "bundle"):
        pass
    with output_lock(tmp_path / "bundle"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_ranks_of_our_launcher_leave_the_lock_to_it(monkeypatch, tmp_path):
    monkeypatch.setenv(distributed.LAUNCHER_ENV, "1")
    with output_lock(tmp_path / "bundle"), output_lock(tmp_path / "bundle"):
        pass


RANK = """
import os, sys, time
from modelyard.training.distributed import die_with_launcher
die_with_launcher()
print(os.getpid(), flush=True)
time.sleep(60)
"""

LAUNCHER = """
import os, subprocess, sys, time
env = {**os.environ, "LOCAL_RANK": "0", "RANK": "0", "MODELYARD_LAUNCHER_PID": str(os.getpid())}
rank = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env, stdout=subprocess.PIPE, text=True)
print(rank.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_rank_dies_when_its_launcher_is_killed_with_sigkill():
    launcher = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LAUNCHER), textwrap.dedent(RANK)], stdout=subprocess.PIPE, text=True
    )
    rank = int(launcher.stdout.readline())
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(rank):
        time.sleep(0.05)
    try:
        assert not _alive(rank)
    finally:
        if _alive(rank):  # left running by a failing check: not for the next test to meet
            os.kill(rank, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for init to reap it counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_master_port_in_use_is_one_error_naming_it():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port} \\(address in use\\): choose another"):
            distributed.check_master_port(distributed.Launch(nproc=2, master_port=port))
