"""`modelyard serve` as users run it: a real process on loopback that answers and shuts down cleanly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "server exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server not ready in time")


def wait_in_flight(url: str, count: int, timeout: float = 30) -> None:
    """Until the server handles `count` requests besides this /metrics one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        match = re.search(r"^modelyard_requests_in_flight ([0-9.]+)$", text, re.MULTILINE)
        if match and float(match.group(1)) >= count + 1:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} requests never were in flight together")


@pytest.mark.slow
def test_serve_answers_then_finishes_in_flight_requests_on_sigterm(tfidf_bundle, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = shutil.which("modelyard", path=str(Path(sys.executable).parent))
    assert script, "the modelyard console script is installed with the package"
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path)}
    env.pop("MODELYARD_API_KEY", None)
    process = subprocess.Popen(
        [script, "serve", str(tfidf_bundle), "--port", str(port), "--max-wait-ms", "2000", "--no-log-inputs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(url, process)
        first = httpx.post(f"{url}/v1/predict", json={"inputs": ["my card is lost"]}, timeout=30)
        assert first.status_code == 200 and first.json()["prediction_ids"]
        with ThreadPoolExecutor(4) as pool:
            in_flight = [
                pool.submit(httpx.post, f"{url}/v1/predict", json={"inputs": [f"text {i}"]}, timeout=30)
                for i in range(4)
            ]
            wait_in_flight(url, 4)  # they now wait in the batcher for more inputs (max-wait-ms 2000)
            process.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in in_flight]
        assert statuses == [200] * 4
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode()
    assert f"http://127.0.0.1:{port}" in stderr and "Application shutdown complete" in stderr
    assert "Traceback" not in stderr


def _serve(args: list[str], home: Path) -> subprocess.CompletedProcess:
    script = shutil.which("modelyard", path=str(Path(sys.executable).parent))
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    return subprocess.run([script, "serve", *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_taken_port_is_refused_before_the_model_loads(tfidf_bundle, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve([str(tfidf_bundle), "--port", str(port)], tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
    assert "serving" not in done.stderr  # refused before the banner, the model never loaded


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_changed_bundle_is_refused_before_any_worker_starts(tfidf_bundle, tmp_path, workers):
    changed = tmp_path / "bundle"
    shutil.copytree(tfidf_bundle, changed)
    with (changed / "config.yaml").open("a") as config:
        config.write("# edited\n")
    done = _serve([str(changed), "--port", str(free_port()), "--workers", workers], tmp_path)
    assert done.returncode == 1, done.stderr
    assert "checksum mismatch for config.yaml" in done.stderr and "Traceback" not in done.stderr
    assert "Started" not in done.stderr
