"""Prometheus metrics of the hook service: request counts and latency per hook, and the
controllers' syncs, errors and latency.

- ``spo_hook_requests_total{hook, code}`` and ``spo_hook_request_duration_seconds{hook}``:
  every route that answers a hook or an admission call;
- ``controller_runtime_reconcile_total{controller, result}``,
  ``controller_runtime_reconcile_errors_total{controller}`` and
  ``controller_runtime_reconcile_time_seconds{controller}``: every sync and finalize call
  of a controller (``seccompprofile``, ``spod``, ...), one reconcile each, an error when
  the answer is not a 200 (Metacontroller then retries). The names are those
  controller-runtime gives the Go operator's controllers, so that their dashboards work.

Each app gets its own registry (nothing is created at import time). Under
gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` makes the workers
share their numbers, and ``/metrics`` reads them all, with those of ``extra_dirs``
(another server's workers, e.g. the other container of the same pod). Every metric is
listed in docs/metrics.md.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
RECONCILES = ("sync", "finalize")  # the hook calls that are a controller's reconcile
SUCCESS = "success"
ERROR = "error"


def controller_of(hook: str) -> str | None:
    """``seccompprofile`` for ``seccompprofile-sync``; None for a call that is no reconcile
    (customize, admission)."""
    controller, _, call = hook.rpartition("-")
    return controller if controller and call in RECONCILES else None


class HookMetrics:
    def __init__(self) -> None:
        # no <name>_created series (a setting of the process)
        disable_created_metrics()  # type: ignore[no-untyped-call]
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
        self.reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Sync and finalize calls by controller and result.",
            ["controller", "result"],
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Sync and finalize calls that did not answer 200, by controller.",
            ["controller"],
            registry=self.registry,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "How long a sync or finalize call took, by controller.",
            ["controller"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, hook: str, code: int, seconds: float) -> None:
        self.requests.labels(hook=hook, code=str(code)).inc()
        self.latency.labels(hook=hook).observe(seconds)
        controller = controller_of(hook)
        if controller is not None:
            failed = code != 200
            self.reconciles.labels(controller=controller, result=ERROR if failed else SUCCESS).inc()
            if failed:
                self.reconcile_errors.labels(controller=controller).inc()
            self.reconcile_time.labels(controller=controller).observe(seconds)

    def exposition(self, extra_dirs: Sequence[str] = ()) -> bytes:
        """Every worker's numbers (and ``extra_dirs``' with a shared folder), as text."""
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if shared:
            return folders_exposition([shared, *extra_dirs])
        return generate_latest(self.registry)


def folders_exposition(folders: Sequence[str]) -> bytes:
    """The numbers of every process that wrote to ``folders`` (prometheus_client's
    multiprocess files), merged as one folder's would be, as text."""
    files = [path for folder in folders for path in sorted(glob.glob(os.path.join(folder, "*.db")))]
    registry = CollectorRegistry()
    registry.register(_Merged(files))
    return generate_latest(registry)


class _Merged(Collector):
    """The samples of several multiprocess folders, merged as one folder's would be."""

    def __init__(self, files: list[str]) -> None:
        self.files = files

    def collect(self) -> Iterable[Metric]:
        merge = multiprocess.MultiProcessCollector.merge
        merged: Iterable[Metric] = merge(  # type: ignore[no-untyped-call]
            self.files, accumulate=True
        )
        return merged
