"""Prometheus metrics of the hook service: request counts and latency per hook.

Each app gets its own registry (nothing is created at import time). Under
gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` makes the workers
share their numbers, and ``/metrics`` reads them all.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class HookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spo_hook_requests_total",
            "Hook requests by hook and HTTP status code.",
            ["hook", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spo_hook_request_duration_seconds",
            "Hook request latency by hook.",
            ["hook"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, hook: str, code: int, seconds: float) -> None:
        self.requests.labels(hook=hook, code=str(code)).inc()
        self.latency.labels(hook=hook).observe(seconds)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
