"""Bounded load test of `modelyard serve` on loopback: zero errors and stable memory (issue 12).

Starts the real CLI server, then 64 concurrent clients send requests for a fixed time: valid single-text and
batch predictions, and invalid ones the server must refuse with a 4xx (empty or oversized batches, a text over
the length limit, a bad top_k, broken JSON, an unknown route). Errors are 5xx answers, connection failures and
any status other than the one expected. The server's resident memory is sampled every second; a server that
leaks grows over the second half of the run. Prints JSON; exits 1 when there were errors.

    python benchmarks/load_test.py [--bundle BUNDLE] [--seconds 60] [--clients 64] [--warmup 10]

Without --bundle a small TF-IDF text classifier is trained first on the BANKING77 sample in examples/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from serve_bench import free_port, modelyard_command, percentile, process_cpu_seconds, texts, wait_ready

ROOT = Path(__file__).resolve().parents[1]
MAX_TEXT_CHARS = 10_000  # the server's default limit, passed explicitly so the oversized input is refused
MAX_INPUTS = 64


@dataclass(frozen=True)
class Kind:
    """One sort of request: how to send it and which statuses are correct for it."""

    name: str
    weight: float
    expected: frozenset[int]
    inputs: int = 0  # predictions it asks for, when valid


KINDS = [
    Kind("single", 0.55, frozenset({200}), 1),
    Kind("batch", 0.25, frozenset({200}), 8),
    Kind("empty_batch", 0.04, frozenset({422})),
    Kind("too_many_inputs", 0.04, frozenset({422})),
    Kind("text_too_long", 0.03, frozenset({422})),
    Kind("bad_top_k", 0.03, frozenset({422})),
    Kind("broken_json", 0.03, frozenset({422})),
    Kind("unknown_route", 0.03, frozenset({404})),
]


def request_for(kind: Kind, rng: random.Random, pool: list[str]) -> tuple[str, str, dict]:
    """(method, path, httpx keyword arguments) of one request of this kind."""
    match kind.name:
        case "single":
            return "POST", "/v1/predict", {"json": {"inputs": [rng.choice(pool)]}}
        case "batch":
            return "POST", "/v1/predict", {"json": {"inputs": rng.sample(pool, 8), "top_k": 3}}
        case "empty_batch":
            return "POST", "/v1/predict", {"json": {"inputs": []}}
        case "too_many_inputs":
            return "POST", "/v1/predict", {"json": {"inputs": [rng.choice(pool)] * (MAX_INPUTS + 1)}}
        case "text_too_long":
            return "POST", "/v1/predict", {"json": {"inputs": ["a" * (MAX_TEXT_CHARS + 1)]}}
        case "bad_top_k":
            return "POST", "/v1/predict", {"json": {"inputs": [rng.choice(pool)], "top_k": 0}}
        case "broken_json":
            headers = {"content-type": "application/json"}
            return "POST", "/v1/predict", {"content": b'{"inputs": ["unclosed', "headers": headers}
        case _:
            return "GET", "/v1/no-such-route", {}


@dataclass
class Tally:
    """What the clients saw, split at the end of the warm-up for the latency and throughput figures."""

    by_status: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # valid requests after the warm-up
    measured_requests: int = 0
    measured_inputs: int = 0

    def error(self, kind: str, example: str) -> None:
        self.errors[kind] += 1
        if len(self.error_examples) < 10:
            self.error_examples.append(example)


def rss_bytes(pid: int) -> int:
    """Resident memory of the server and its children (psutil if installed, else /proc VmRSS)."""
    try:
        import psutil
    except ImportError:
        pids = [pid, *_children(pid)]
        return sum(_vm_rss(p) for p in pids)
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def _vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


async def sample_memory(pid: int, stop: float, samples: list[tuple[float, int]]) -> None:
    start = time.perf_counter()
    while (now := time.perf_counter()) < stop:
        samples.append((now - start, rss_bytes(pid)))
        await asyncio.sleep(1.0)
    samples.append((time.perf_counter() - start, rss_bytes(pid)))


async def drive(url: str, args: argparse.Namespace, pool: list[str], pid: int) -> tuple[Tally, list]:
    tally = Tally()
    samples: list[tuple[float, int]] = []
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    weights = [k.weight for k in KINDS]
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        measure_from, stop = start + args.warmup, start + args.seconds

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while (now := time.perf_counter()) < stop:
                kind = rng.choices(KINDS, weights)[0]
                method, path, options = request_for(kind, rng, pool)
                tally.by_kind[kind.name] += 1
                try:
                    response = await client.request(method, path, **options)
                except httpx.HTTPError as err:
                    tally.by_status[type(err).__name__] += 1
                    tally.error("connection", f"{kind.name}: {type(err).__name__}: {err}")
                    continue
                status = response.status_code
                tally.by_status[str(status)] += 1
                if status >= 500:
                    tally.error("server_5xx", f"{kind.name}: {status} {response.text[:200]}")
                elif status not in kind.expected:
                    tally.error("unexpected_status", f"{kind.name}: {status} {response.text[:200]}")
                elif now >= measure_from:
                    tally.measured_requests += 1
                    tally.measured_inputs += kind.inputs
                    if kind.inputs:
                        tally.latencies.append(time.perf_counter() - now)

        await asyncio.gather(sample_memory(pid, stop, samples), *(worker(i) for i in range(args.clients)))
    return tally, samples


def memory_summary(samples: list[tuple[float, int]], warmup: float, seconds: float) -> dict:
    """Start, after warm-up, peak and end, in MB, and the growth over the second half of the run."""
    mb = [(t, b / 2**20) for t, b in samples]
    after_warmup = next((m for t, m in mb if t >= warmup), mb[-1][1])
    half = [(t, m) for t, m in mb if t >= seconds / 2]
    slope = 0.0
    if len(half) >= 2:
        mean_t = sum(t for t, _ in half) / len(half)
        mean_m = sum(m for _, m in half) / len(half)
        var = sum((t - mean_t) ** 2 for t, _ in half)
        slope = sum((t - mean_t) * (m - mean_m) for t, m in half) / var if var else 0.0
    return {
        "start": round(mb[0][1], 1),
        "after_warmup": round(after_warmup, 1),
        "peak": round(max(m for _, m in mb), 1),
        "end": round(mb[-1][1], 1),
        "growth_second_half": round(half[-1][1] - half[0][1], 1) if half else None,
        "trend_second_half_mb_per_min": round(60 * slope, 2),
        "samples": len(mb),
    }


def tiny_bundle(folder: Path) -> str:
    """A TF-IDF + logistic regression intent classifier on 2,000 BANKING77 rows: seconds to train."""
    import pandas as pd
    import yaml

    import modelyard

    frame = pd.read_csv(ROOT / "examples" / "data" / "banking77" / "train.csv")
    frame.sample(n=min(2000, len(frame)), random_state=0).to_csv(folder / "train.csv", index=False)
    config = {
        "name": "load-test",
        "task": "text_classification",
        "data": {"train": "train.csv", "text_column": "text", "label_column": "category"},
        "model": {"backbone": "tfidf-linear"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(modelyard.train(folder / "config.yaml", output=folder / "bundle", quiet=True).path)


async def run(args: argparse.Namespace, home: str) -> dict:
    os.environ["MODELYARD_HOME"] = home  # tracking of the tiny model's training, and the server's logs
    bundle = args.bundle or tiny_bundle(Path(home))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*modelyard_command(), "serve", bundle, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "MODELYARD_HOME": home, "MODELYARD_MAX_TEXT_CHARS": str(MAX_TEXT_CHARS)}
    env["MODELYARD_MAX_INPUTS"] = str(MAX_INPUTS)
    env.pop("MODELYARD_API_KEY", None)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ready = await wait_ready(url, process, args.ready_timeout)
        cpu_before = process_cpu_seconds(process.pid)
        tally, samples = await drive(url, args, texts(), process.pid)
        cpu_used = process_cpu_seconds(process.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    clean = process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once it has shut down
    measured = args.seconds - args.warmup
    requests = sum(tally.by_kind.values())
    memory = memory_summary(samples, args.warmup, args.seconds)
    return {
        "bundle": bundle,
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "cpus": os.cpu_count(),
        "time_to_ready_s": round(ready, 2),
        "requests": requests,
        "by_status": dict(sorted(tally.by_status.items())),
        "by_kind": dict(sorted(tally.by_kind.items())),
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_examples": tally.error_examples,
        "after_warmup": {
            "requests_per_s": round(tally.measured_requests / measured, 1),
            "predictions_per_s": round(tally.measured_inputs / measured, 1),
            "p50_ms": round(percentile(tally.latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 1),
            "max_ms": round(max(tally.latencies, default=float("nan")) * 1000, 1),
        },
        "server_cpu_seconds": round(cpu_used, 1),
        "server_rss_mb": memory,
        "server_stopped_cleanly": clean,
        "server_stderr_tail": "" if clean else stderr.decode("utf-8", "replace")[-500:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="the bundle to serve (default: a TF-IDF model trained now)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run, warm-up included")
    parser.add_argument("--warmup", type=float, default=10.0, help="first seconds left out of latency figures")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    args = parser.parse_args()
    if not 0 <= args.warmup < args.seconds:
        parser.error("--warmup must be shorter than --seconds")
    with tempfile.TemporaryDirectory() as home:
        report = asyncio.run(run(args, home))
    print(json.dumps(report, indent=2))
    sys.exit(1 if report["errors"] else 0)


if __name__ == "__main__":
    main()
