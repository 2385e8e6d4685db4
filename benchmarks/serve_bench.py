"""Serving throughput and latency: `modelyard serve` with adaptive batching vs `--max-batch-size 1`.

Starts the real CLI server on loopback for each setting, measures time to /readyz, then runs N concurrent
clients (one single-text request at a time each) for a fixed duration. Prints JSON, with the load average:
the clients share the machine's cores with the server, so they speak just enough HTTP/1.1 over asyncio
streams to cost little CPU (the same clients for every setting). Beside rps and latency, each run reports
what other load on the machine disturbs less: the server's CPU ms per request and CPU seconds until ready, and
`model_busy_share`, the share of the time a forward pass was running (below 1: the model waited for work).

    python benchmarks/serve_bench.py BUNDLE [--clients 32] [--duration 15] [--batch-sizes 32 1]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FALLBACK_TEXTS = [
    "I still have not received my new card, when will it arrive?",
    "How do I top up my account with a bank transfer?",
    "What is the exchange rate for euros?",
    "My card payment was declined at the shop",
    "Can I change my PIN at an ATM?",
    "Why was I charged a fee for withdrawing cash?",
]


def texts() -> list[str]:
    path = ROOT / "examples" / "data" / "banking77" / "test.csv"
    if not path.exists():
        return FALLBACK_TEXTS
    with path.open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)][:1000]


def modelyard_command() -> list[str]:
    """The `modelyard` console script of this interpreter's environment."""
    script = shutil.which("modelyard", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from modelyard.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of the values at or below it (p99 of 100
    latencies is the 99th, not the slowest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


async def wait_ready(url: str, process: subprocess.Popen, timeout: float) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient() as client:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}")
            try:
                if (await client.get(f"{url}/readyz", timeout=1)).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.02)
    raise RuntimeError(f"not ready after {timeout} s")


class Connection:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read the status and the Content-Length body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            if self.streams is None:
                self.streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.streams
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            try:
                header = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"\r\ncontent-length: *(\d+)", header, re.IGNORECASE)
                if match is None:
                    raise ConnectionError("response without Content-Length")
                content = await reader.readexactly(int(match.group(1)))
            except BaseException:
                self.close()
                raise
            if re.search(rb"\r\nconnection: *close", header, re.IGNORECASE):
                self.close()
            return int(header[9:12]), content

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def load(port: int, clients: int, duration: float, warmup: float, pool: list[str]) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    count = sent = 0
    bodies = [json.dumps({"inputs": [text]}).encode() for text in pool]
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + duration

    async def worker(seed: int) -> None:
        nonlocal count, sent
        rng = random.Random(seed)
        connection = Connection(port)
        while (now := time.perf_counter()) < stop:
            try:
                status, content = await connection.post("/v1/predict", rng.choice(bodies))
                ok = status == 200 and content.startswith(b'{"predictions":[{')
                kind = str(status) if status != 200 else "malformed answer"
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
                ok, kind = False, type(err).__name__
            sent += 1
            if now >= measure_from:
                if ok:
                    latencies.append(time.perf_counter() - now)
                    count += 1
                else:
                    errors[kind] = errors.get(kind, 0) + 1
        connection.close()

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return {
        "requests": count,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "throughput_rps": round(count / duration, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "sent_including_warmup": sent,
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc): robust to other load, unlike wall-clock rates."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def batch_counters(url: str) -> dict[str, float]:
    """The server's own batch histograms: forward passes, inputs, and seconds spent predicting."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics", timeout=10)).text
    pattern = r"^modelyard_(batch_size|batch_latency_seconds)_(sum|count) ([0-9.e+-]+)$"
    return {f"{name}_{kind}": float(value) for name, kind, value in re.findall(pattern, text, re.MULTILINE)}


def batch_report(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Inputs per forward pass, and the share of the time the model was busy (1.0: it never waited for work)."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    batches = delta.get("batch_size_count", 0.0)
    return {
        "mean_batch_size": round(delta.get("batch_size_sum", 0.0) / batches, 2) if batches else 0.0,
        "model_busy_share": round(delta.get("batch_latency_seconds_sum", 0.0) / seconds, 2),
    }


async def run_one(bundle: str, max_batch_size: int, args: argparse.Namespace, pool: list[str]) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*modelyard_command(), "serve", bundle, "--port", str(port)]
    command += ["--max-batch-size", str(max_batch_size), "--max-wait-ms", str(args.max_wait_ms), *args.serve_option]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MODELYARD_HOME": home}
        env.pop("MODELYARD_API_KEY", None)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ready = await wait_ready(url, process, args.ready_timeout)
            ready_cpu = process_cpu_seconds(process.pid)  # less sensitive than `ready` to other load
            counters = await batch_counters(url)
            cpu_before, client_before = process_cpu_seconds(process.pid), time.process_time()
            started = time.perf_counter()
            result = await load(port, args.clients, args.duration, args.warmup, pool)
            cpu_used = process_cpu_seconds(process.pid) - cpu_before
            client_used = time.process_time() - client_before
            elapsed = time.perf_counter() - started
            sent = result.pop("sent_including_warmup")
            result["server_cpu_ms_per_request"] = round(1000 * cpu_used / sent, 2) if sent else None
            result["client_cpu_ms_per_request"] = round(1000 * client_used / sent, 2) if sent else None
            result.update(batch_report(counters, await batch_counters(url), elapsed))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "max_batch_size": max_batch_size,
        "time_to_ready_s": round(ready, 2),
        "server_cpu_s_to_ready": round(ready_cpu, 2),
        **result,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per setting")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="passed on to `modelyard serve` (repeatable), e.g. --serve-option=--threads=1",
    )
    args = parser.parse_args()
    pool = texts()
    load_before = os.getloadavg()
    runs = [await run_one(args.bundle, size, args, pool) for size in args.batch_sizes]
    report = {
        "bundle": args.bundle,
        "clients": args.clients,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "runs": runs,
    }
    if len(runs) >= 2 and runs[-1]["throughput_rps"]:
        report["speedup"] = round(runs[0]["throughput_rps"] / runs[-1]["throughput_rps"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
