"""The supervisor of `serve --workers N`: what it does with the listening socket when told to stop."""

from __future__ import annotations

import signal
import socket

import pytest
import uvicorn

from modelyard.serving.run import _Supervisor


@pytest.mark.parametrize("stop", ["handle_term", "handle_int"])
def test_a_stopping_supervisor_refuses_new_connections_at_once(monkeypatch, stop):
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the supervisor would take over this test's signals
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    supervisor = _Supervisor(uvicorn.Config("modelyard.serving.run:app_from_environment", workers=2), [listening])
    getattr(supervisor, stop)()
    assert supervisor.should_exit.is_set()
    # not accepted into a backlog that no worker reads any more: refused, so the client may retry elsewhere
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
