"""A failed `train --nproc` run is reported as its root cause: the rank, and that rank's own error."""

from __future__ import annotations

import time

import pytest
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from modelyard.errors import ConfigError
from modelyard.training import distributed


def fail_in_rank(rank: int, error: Exception, monkeypatch, folder) -> None:
    """Raise `error` inside rank `rank` and record it there, as the CLI's entry point does."""
    monkeypatch.setenv(distributed.ERRORS_ENV, str(folder))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("RANK", str(rank))
    try:
        raise error
    except Exception as raised:
        assert distributed.record_rank_failure(raised)


def exited(rank: int, code: int) -> ProcessFailure:
    return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=code, error_file="<N/A>")


def test_outside_a_rank_nothing_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv(distributed.ERRORS_ENV, str(tmp_path))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert not distributed.record_rank_failure(RuntimeError("boom"))


def test_the_first_recorded_error_is_reported_with_its_rank_and_where_it_was_raised(monkeypatch, tmp_path):
    fail_in_rank(1, RuntimeError("Expected to have finished reduction"), monkeypatch, tmp_path)
    time.sleep(0.01)
    fail_in_rank(0, ConnectionResetError("Connection closed by peer"), monkeypatch, tmp_path)
    error = distributed._rank_failure({0: exited(0, 1), 1: exited(1, 1)}, tmp_path, 2)
    assert error.message.startswith("rank 1 of 2 failed: RuntimeError: Expected to have finished reduction (at ")
    assert "test_rank_failures.py" in error.message and "--debug" in error.hint


def test_a_user_error_in_a_rank_keeps_its_message_and_hint(monkeypatch, tmp_path):
    fail_in_rank(0, ConfigError("train.batch_size 7 must divide evenly", "use 8"), monkeypatch, tmp_path)
    error = distributed._rank_failure({0: exited(0, 1)}, tmp_path, 2)
    assert (error.message, error.hint) == ("rank 0 of 2: train.batch_size 7 must divide evenly", "use 8")


@pytest.mark.parametrize("terminated_peer", [False, True])
def test_a_rank_killed_by_a_signal_outranks_the_errors_its_peers_hit_afterwards(terminated_peer, monkeypatch, tmp_path):
    fail_in_rank(0, ConnectionResetError("Connection closed by peer"), monkeypatch, tmp_path)
    failures = {0: exited(0, 1), 1: exited(1, -9)}
    if terminated_peer:  # the agent stops the remaining ranks with SIGTERM
        failures = {0: exited(0, -15), 1: exited(1, -9)}
        (tmp_path / "rank-0.json").unlink()
    error = distributed._rank_failure(failures, tmp_path, 2)
    assert error.message == "rank 1 of 2 was killed by SIGKILL (process 1001)"
    assert "out of memory" in error.hint
