"""Prometheus metrics, one ``CollectorRegistry`` per application (no global state): HTTP requests per
endpoint and status, and per model its queue, batches and execution providers."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# The endpoint label of requests no route answered (404s, bodies refused before routing): paths stay bounded.
UNMATCHED = "unmatched"
# Set (by the supervisor, service/server.py) when several worker processes serve: each writes its metrics
# to files in that directory and /metrics adds them up.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ModelMetrics:
    """The metrics of one model version, labels bound; what its batcher records."""

    queue_wait: Histogram
    compute: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    rejected: Counter
    abandoned: Counter


class Metrics:
    """Every metric of one application, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        http = ["method", "endpoint", "status"]
        model = ["model", "version"]
        self.requests = Counter(
            "modelserve_http_requests", "HTTP requests answered.", http, registry=self.registry
        )
        self.latency = Histogram(
            "modelserve_http_request_duration_seconds",
            "Time from request to the end of the response.",
            http,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "modelserve_queue_wait_seconds",
            "Time a request waited in its model's queue before its batch ran.",
            model,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute = Histogram(
            "modelserve_compute_seconds",
            "Time of one batched run (captioners: one encoder run or one decoder step).",
            model,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelserve_batch_size",
            "Items (images, texts) per batched run; captioners: images decoded together per step.",
            model,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "modelserve_queue_depth",
            "Requests waiting in the model's queue (several workers: their sum).",
            model,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "modelserve_queue_rejected",
            "Requests refused because the model's queue was full (503).",
            model,
            registry=self.registry,
        )
        self.abandoned = Counter(
            "modelserve_requests_abandoned",
            "Requests whose client went away before the answer; their work was dropped (while queued, or "
            "a caption at its next decoder step).",
            model,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "modelserve_model_info",
            "1 for every loaded model version; providers: those its sessions actually got.",
            ["model", "version", "task", "providers", "requested_providers"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def model(self, name: str, version: int) -> ModelMetrics:
        """The metrics of one model version."""
        labels = {"model": name, "version": str(version)}
        return ModelMetrics(
            queue_wait=self.queue_wait.labels(**labels),
            compute=self.compute.labels(**labels),
            batch_size=self.batch_size.labels(**labels),
            queue_depth=self.queue_depth.labels(**labels),
            rejected=self.rejected.labels(**labels),
            abandoned=self.abandoned.labels(**labels),
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text format; with several workers, every live worker's metrics
        added up (gauges: queue depth summed, model info once per label set)."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)


# the methods with a series of their own; any other (a parser that takes any token, h11) is "other", so that
# a client sending random methods cannot make a series each
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP request by method, route (its path template, so
    ``/v2/models/{name}/infer`` is one series) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # the app raised before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            labels = (method, _endpoint(scope), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


def _endpoint(scope: Scope) -> str:
    """The path template of the route that answered (the router records it in the scope)."""
    return str(getattr(scope.get("route"), "path", UNMATCHED))
