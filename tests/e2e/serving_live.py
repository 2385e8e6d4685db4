"""A real uvicorn server around `create_app` on a free loopback port, in a thread, for e2e tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings


@contextlib.contextmanager
def live_server(bundle: Path, **settings) -> Iterator[str]:
    """Yields the base URL once the app is loaded and listening; stops the server (gracefully) afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(str(bundle), ServeSettings(port=port, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
