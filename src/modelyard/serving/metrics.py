"""Prometheus metrics, one registry per app so several apps (tests, workers) never collide."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class ServerMetrics:
    """The series `/metrics` exposes: requests, latency, batch sizes, queue depth, the model served."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelyard_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelyard_request_latency_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelyard_batch_size",
            "inputs per batched forward pass",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "modelyard_batch_latency_seconds",
            "time to predict one batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("modelyard_requests_in_flight", "HTTP requests being handled", registry=self.registry)
        self.queue_depth = Gauge("modelyard_queue_depth", "inputs waiting for a batch", registry=self.registry)
        self.predictions = Counter("modelyard_predictions", "inputs answered", registry=self.registry)
        self.model = Info("modelyard_model", "the model being served", registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_latency.observe(seconds)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (never the raw path, which a fuzzer controls)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
