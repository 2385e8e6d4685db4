"""Peer serving benchmark: one MiniLM bundle served by modelyard, LitServe and BentoML, same client, one run.

Each server runs alone on 127.0.0.1 with its own dynamic batching, one worker and the same torch threads, and the
peers serve the bundle's own weights (benchmarks/peer_servers/minilm.py rebuilds the classifier from the bundle's
files with plain transformers + torch, same max_length and precision). The closed-loop client (serve_bench's
cheap asyncio HTTP/1.1 connections) sends one BANKING77 text per request from C concurrent clients for a fixed
time after a warm-up, and reports rps, p50/p99 and errors. The peers live in their own virtual environments
(their pins conflict with modelyard's), created on first use unless given:

    .venv/bin/python benchmarks/peer_serving.py BUNDLE [--clients 8 32] [--duration 30] [--warmup 5] \
        [--litserve-python /tmp/peer-venv-litserve/bin/python] [--bentoml-python /tmp/peer-venv-bentoml/bin/python]

Prints JSON: every setting tried, the best of each server (highest rps with p99 <= --p99-budget-ms at the
largest client count), and the ratio of modelyard's best to the best peer's.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import Connection, free_port, modelyard_command, percentile, texts

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peer_servers"
PINS = {"torch": "2.14.1", "transformers": "5.23.0", "tokenizers": "0.23.3", "safetensors": "0.8.0"}
PEER_PACKAGES = {"litserve": "litserve==0.2.19", "bentoml": "bentoml==1.4.40"}


def peer_python(name: str, given: str | None) -> str:
    """The peer's interpreter: the one given, else /tmp/peer-venv-NAME, created and filled on first use."""
    if given:
        return given
    venv = Path(tempfile.gettempdir()) / f"peer-venv-{name}"
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", f"import {name}, transformers"]).returncode == 0:
        return str(python)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = [f"{k}=={v}" for k, v in PINS.items()]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins, PEER_PACKAGES[name]], check=True)
    return str(python)


def server_command(kind: str, setting: dict, port: int, args: argparse.Namespace) -> tuple[list[str], dict]:
    """The command line and extra environment that start one server with one batching setting."""
    env = {"PEER_BUNDLE": args.bundle, "PEER_THREADS": str(args.threads)}
    if kind == "modelyard":
        if not setting.get("log_predictions", True):
            env["MODELYARD_LOG_PREDICTIONS"] = "false"
        batching = ["--max-batch-size", str(setting["max_batch_size"]), "--max-wait-ms", str(setting["max_wait_ms"])]
        return [
            *modelyard_command(),
            "serve",
            args.bundle,
            "--port",
            str(port),
            "--threads",
            str(args.threads),
            *batching,
        ], env
    if kind == "litserve":
        env.update(PEER_MAX_BATCH=str(setting["max_batch_size"]), PEER_BATCH_TIMEOUT=str(setting["batch_timeout"]))
        return [args.litserve_python, str(PEERS / "litserve_app.py"), "--port", str(port)], env
    env.update(PEER_MAX_BATCH=str(setting["max_batch_size"]), PEER_MAX_LATENCY_MS=str(setting["max_latency_ms"]))
    bentoml = str(Path(args.bentoml_python).parent / "bentoml")
    command = [bentoml, "serve", "bentoml_service:MiniLM", "--working-dir", str(PEERS)]
    return [*command, "--host", "127.0.0.1", "--port", str(port)], env


async def wait_ready(port: int, process: subprocess.Popen, timeout: float) -> float:
    """Seconds until a real prediction answers 200: the same readiness test for every server."""
    started = time.perf_counter()
    body = json.dumps({"inputs": ["How do I top up my card?"]}).encode()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        connection = Connection(port)
        try:
            status, content = await connection.post("/v1/predict", body, timeout=10)
            if status == 200 and b'"label"' in content:
                return time.perf_counter() - started
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            connection.close()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout} s")


async def load(port: int, clients: int, duration: float, warmup: float, pool: list[str]) -> dict:
    """Closed loop: each client sends one text, waits for the answer, sends the next."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    bodies = [json.dumps({"inputs": [text]}).encode() for text in pool]
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + duration

    async def client(seed: int) -> None:
        nonlocal sent
        rng = random.Random(seed)
        connection = Connection(port)
        while (now := time.perf_counter()) < stop:
            try:
                status, content = await connection.post("/v1/predict", rng.choice(bodies))
                ok, kind = status == 200 and b'"label"' in content, str(status) if status != 200 else "malformed"
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ConnectionError,
            ) as err:
                ok, kind = False, type(err).__name__
            sent += 1
            if now >= measure_from:
                if ok:
                    latencies.append(time.perf_counter() - now)
                else:
                    errors[kind] = errors.get(kind, 0) + 1
        connection.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rps": round(len(latencies) / duration, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "sent": sent,
    }


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a server process and all its live descendants (peers start several)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (peers start worker processes), SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


async def run_server(kind: str, setting: dict, args: argparse.Namespace, pool: list[str]) -> dict:
    port = free_port()
    command, extra = server_command(kind, setting, port, args)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, **extra, "MODELYARD_HOME": home, "BENTOML_HOME": home, "HF_HUB_OFFLINE": "1"}
        env.pop("MODELYARD_API_KEY", None)
        log = open(Path(home) / "server.log", "w+b")  # noqa: SIM115 (read back on failure)
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        result: dict = {"server": kind, "setting": setting}
        try:
            result["time_to_ready_s"] = round(await wait_ready(port, process, args.ready_timeout), 2)
            for clients in args.clients:
                cpu_before = tree_cpu_seconds(process.pid)
                run = await load(port, clients, args.duration, args.warmup, pool)
                sent = run.pop("sent")
                # CPU per request, warm-up included: other load on the machine disturbs it less than rps
                run["server_cpu_ms_per_request"] = round(1000 * (tree_cpu_seconds(process.pid) - cpu_before) / sent, 1)
                result.setdefault("runs", []).append(run)
        except RuntimeError as err:
            log.seek(0)
            result["failed"] = f"{err}: {log.read().decode(errors='replace')[-1500:]}"
        finally:
            stop(process)
            log.close()
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def best(results: list[dict], kind: str, clients: int, budget_ms: float) -> dict | None:
    """The highest rps at `clients` with p99 within budget and no errors, over this server's settings."""
    runs = [
        {"setting": r["setting"], **run}
        for r in results
        if r["server"] == kind
        for run in r.get("runs", [])
        if run["clients"] == clients and run["p99_ms"] <= budget_ms and not run["errors"]
    ]
    return max(runs, key=lambda run: run["rps"], default=None)


SETTINGS = {
    # modelyard's documented knobs (serving/settings.py): the default 32 / 5 ms, a longer wait, and the latter
    # without the prediction log (MODELYARD_LOG_PREDICTIONS=false), which the peers do not keep either
    "modelyard": [
        {"max_batch_size": 32, "max_wait_ms": 5.0},
        {"max_batch_size": 64, "max_wait_ms": 10.0},
        {"max_batch_size": 64, "max_wait_ms": 10.0, "log_predictions": False},
    ],
    # LitServe docs ("Batching"): max_batch_size with a short batch_timeout (their examples: 0.01-0.05 s)
    "litserve": [{"max_batch_size": 32, "batch_timeout": 0.01}, {"max_batch_size": 32, "batch_timeout": 0.05}],
    # BentoML docs ("Adaptive batching"): max_batch_size, and max_latency_ms as the latency budget
    "bentoml": [{"max_batch_size": 32, "max_latency_ms": 1000}, {"max_batch_size": 64, "max_latency_ms": 250}],
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per client count")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads, all servers")
    parser.add_argument("--servers", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--settings", type=int, default=3, help="how many of each server's settings to try")
    parser.add_argument("--p99-budget-ms", type=float, default=250.0)
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--litserve-python")
    parser.add_argument("--bentoml-python")
    args = parser.parse_args()
    args.bundle = str(Path(args.bundle).resolve())
    if "litserve" in args.servers:
        args.litserve_python = peer_python("litserve", args.litserve_python)
    if "bentoml" in args.servers:
        args.bentoml_python = peer_python("bentoml", args.bentoml_python)
    pool = texts()
    load_before = os.getloadavg()
    results = [
        await run_server(kind, setting, args, pool)
        for kind in args.servers
        for setting in SETTINGS[kind][: args.settings]
    ]
    top = max(args.clients)
    bests = {kind: best(results, kind, top, args.p99_budget_ms) for kind in args.servers}
    fastest = {kind: best(results, kind, top, float("inf")) for kind in args.servers}
    peers = [b["rps"] for kind, b in bests.items() if kind != "modelyard" and b]
    report = {
        "bundle": args.bundle,
        "cpus": len(os.sched_getaffinity(0)),
        "threads": args.threads,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "load_average_1m_5m_15m": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "results": results,
        f"best_at_{top}_clients_p99_within_{args.p99_budget_ms:g}ms": bests,
        f"best_at_{top}_clients_any_p99": fastest,
    }
    if bests.get("modelyard") and peers:
        ratio = bests["modelyard"]["rps"] / max(peers)
        report["modelyard_vs_best_peer"] = round(ratio, 2)
        report["target_1_5x_met"] = ratio >= 1.5
    else:
        report["target_1_5x_met"] = False  # modelyard, or every peer, missed the p99 budget at this load
    any_peer = [b["rps"] for kind, b in fastest.items() if kind != "modelyard" and b]
    if fastest.get("modelyard") and any_peer:
        report["modelyard_vs_best_peer_any_p99"] = round(fastest["modelyard"]["rps"] / max(any_peer), 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
