"""Replicated serving with a shared state store: no prediction-log row lost under load (issue 27, item 2).

Starts a throwaway PostgreSQL (the Debian `postgresql` package, its default durability settings) and two real
`modelyard serve` processes with their own MODELYARD_HOME and MODELYARD_STATE_URI pointing at it, as two machines
behind a load balancer would run. Concurrent clients send single-text predictions round-robin to the replicas for a
fixed time; then every answered prediction_id is looked up in the shared log. Target: 0 lost rows with 32 clients
for 60 s. Prints JSON; exits 1 when a row is lost or a request failed.

    python benchmarks/replicas_state.py [--bundle BUNDLE] [--seconds 60] [--clients 32] [--replicas 2]
    python benchmarks/replicas_state.py --store sqlite   # the replicas share one SQLite file instead (one host)

Without --bundle a small TF-IDF text classifier is trained first on the BANKING77 sample in examples/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from load_test import tiny_bundle
from serve_bench import percentile, texts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from replica_helpers import postgres, replicas  # noqa: E402


async def drive(urls: list[str], clients: int, seconds: float, pool: list[str]) -> dict:
    """`clients` closed-loop clients, each request to the next replica in turn; answered ids and latencies."""
    turn = itertools.cycle(urls)
    answered: list[str] = []
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(index: int, http: httpx.AsyncClient) -> None:
        for i in itertools.count():
            if time.monotonic() >= stop:
                return
            started = time.perf_counter()
            try:
                response = await http.post(
                    f"{next(turn)}/v1/predict", json={"inputs": [pool[(index * 7919 + i) % len(pool)]]}
                )
            except httpx.HTTPError as err:
                statuses[type(err).__name__] += 1
                continue
            statuses[str(response.status_code)] += 1
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
                answered.extend(response.json()["prediction_ids"])

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        began = time.monotonic()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.monotonic() - began
    return {"answered": answered, "latencies": latencies, "statuses": dict(statuses), "seconds": elapsed}


def logged_ids(uri: str, name: str) -> set[str]:
    os.environ["MODELYARD_STATE_URI"] = uri
    from modelyard import state
    from modelyard.monitoring.prediction_log import open_log

    conn = open_log()
    try:
        rows = conn.execute("SELECT prediction_id FROM predictions WHERE model = ?", (name,)).fetchall()
    finally:
        conn.close()
        state.close()
    return {row[0] for row in rows}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="the bundle to serve (default: a TF-IDF model trained now)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per replica")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="modelyard-replicas-") as home:
        os.environ.setdefault("MODELYARD_TRACKING", "off")
        os.environ["MODELYARD_HOME"] = home
        bundle = args.bundle or tiny_bundle(Path(home))
        name = json.loads((Path(bundle) / "modelyard.json").read_text())["name"]
        with contextlib.ExitStack() as stack:
            if args.store == "postgresql":
                uri = stack.enter_context(postgres(durable=True))
            else:
                uri = f"sqlite:///{home}/shared/predictions.db"
            env = {**os.environ, "MODELYARD_STATE_URI": uri, "HF_HUB_OFFLINE": "1"}
            env.pop("MODELYARD_API_KEY", None)
            with replicas(Path(bundle), args.replicas, env, "--threads", str(args.threads)) as urls:
                load_before = load_average()
                run = asyncio.run(drive(urls, args.clients, args.seconds, texts()))
                load_after = load_average()
                time.sleep(1.0)  # the log writers commit within ~50 ms of an answer
                before_shutdown = logged_ids(uri, name)
            after_shutdown = logged_ids(uri, name)  # SIGTERM drained the replicas' queues
        answered = set(run["answered"])
        lost = answered - after_shutdown
        report = {
            "benchmark": "replicas_state",
            "store": args.store,
            "replicas": args.replicas,
            "clients": args.clients,
            "seconds": round(run["seconds"], 1),
            "answered_predictions": len(run["answered"]),
            "unique_ids": len(answered),
            "logged_rows": len(after_shutdown),
            "lost_rows": len(lost),
            "lost_rows_1s_after_traffic_before_shutdown": len(answered - before_shutdown),
            "statuses": run["statuses"],
            "rps": round(len(run["answered"]) / run["seconds"], 1),
            "latency_ms": {
                "p50": round(percentile(run["latencies"], 0.50), 1),
                "p99": round(percentile(run["latencies"], 0.99), 1),
            },
            "load_average_1_5_15": {"before": load_before, "after": load_after},
            "cpus": len(os.sched_getaffinity(0)),
            "target": "0 lost rows, 2 replicas + PostgreSQL, 32 clients, 60 s",
        }
    print(json.dumps(report, indent=2))
    failed = sum(v for k, v in run["statuses"].items() if k != "200")
    sys.exit(1 if lost or failed else 0)


if __name__ == "__main__":
    main()
