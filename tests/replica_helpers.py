"""Replicated serving for tests and benchmarks/replicas_state.py: a throwaway PostgreSQL server (the Debian
`postgresql` package) on a free loopback port, and several real `modelyard serve` processes. PostgreSQL refuses to
run as root, so as root it runs as the `postgres` user."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres(durable: bool = True) -> Iterator[str]:
    """Yields `postgresql://postgres@127.0.0.1:PORT/modelyard` (trust auth, loopback only); stops and removes the
    cluster afterwards. `durable=False` turns fsync off (tests); the benchmark keeps PostgreSQL's defaults."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))  # under /tmp: the postgres user can reach it
    data = folder / "data"
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, cwd=folder)

    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        run(
            str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l", str(folder / "log"), "-o", options
        )
        try:
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "modelyard")
            yield f"postgresql://postgres@127.0.0.1:{port}/modelyard"
        finally:
            run(str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 240) -> None:
    """Until /readyz answers 200 (the model is loaded and warm); a server that exits shows its stderr."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "server exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {timeout:g} s")


@contextlib.contextmanager
def replicas(bundle: Path, count: int, env: dict[str, str], *options: str) -> Iterator[list[str]]:
    """`count` real `modelyard serve` processes, each on its own port and with its own MODELYARD_HOME under
    env's (as on separate machines); yields their base URLs and stops them with SIGTERM (graceful drain)."""
    script = shutil.which("modelyard", path=str(Path(sys.executable).parent))
    assert script, "the modelyard console script is installed with the package"
    processes, urls = [], []
    try:
        for index in range(count):
            port = _free_port()
            home = Path(env["MODELYARD_HOME"]) / f"replica-{index}"
            processes.append(
                subprocess.Popen(
                    [script, "serve", str(bundle), "--port", str(port), *options],
                    env={**env, "MODELYARD_HOME": str(home)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            wait_ready(url, process)
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
