"""Prometheus metrics of the node programs, named and labelled as the Go operator's (v0.8.4).

Two registries, as the Go daemon serves two paths:

- ``registry``, the operator's own counters (``/metrics-spod``):
  ``security_profiles_operator_seccomp_profile_total{operation="update"|"delete"}``,
  ``security_profiles_operator_seccomp_profile_error_total{reason}`` and the same two for
  ``selinux_profile``; the log enricher adds its audit counters
  (:mod:`nodesync.enricher.enriching`);
- ``controllers``, the reconcile loops of this node (``/metrics``), with the names
  controller-runtime gives them in the Go daemon: ``controller_runtime_reconcile_total
  {controller, result}``, ``controller_runtime_reconcile_errors_total{controller}``,
  ``controller_runtime_reconcile_time_seconds{controller}``.

Each ``Metrics`` has its own registries, so nothing is created at import time. Every
metric is listed in docs/metrics.md.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

NAMESPACE = "security_profiles_operator"
UPDATE = "update"
DELETE = "delete"
SECCOMP = "seccomp"
SELINUX = "selinux"
SUCCESS = "success"
ERROR = "error"

# a node's reconcile takes from a millisecond (one file) to minutes (semodule on a big policy)
RECONCILE_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


class ReconcileMetrics:
    """``controller_runtime_reconcile_*`` in a registry of their own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "controller_runtime_reconcile_total",
            "Reconcile passes by controller and result.",
            ["controller", "result"],
            registry=registry,
        )
        self.errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Reconcile passes that failed, by controller.",
            ["controller"],
            registry=registry,
        )
        self.time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "How long a reconcile pass took, by controller.",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )

    def observe(self, controller: str, seconds: float, *, failed: bool) -> None:
        self.total.labels(controller=controller, result=ERROR if failed else SUCCESS).inc()
        if failed:
            self.errors.labels(controller=controller).inc()
        self.time.labels(controller=controller).observe(seconds)


class Metrics:
    def __init__(self) -> None:
        # No <name>_created series: the Go operator has none (a setting of the process).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.controllers = CollectorRegistry(auto_describe=True)
        self._profile: dict[str, Counter] = {}
        self._error: dict[str, Counter] = {}
        for kind in (SECCOMP, SELINUX):
            self._profile[kind] = Counter(
                f"{kind}_profile",
                f"{kind} profiles written to (update) or removed from (delete) this node.",
                ["operation"],
                namespace=NAMESPACE,
                registry=self.registry,
            )
            self._error[kind] = Counter(
                f"{kind}_profile_error",
                f"{kind} profiles this node could not install or report, by reason.",
                ["reason"],
                namespace=NAMESPACE,
                registry=self.registry,
            )
        self.reconciles = ReconcileMetrics(self.controllers)

    def updated(self, count: int = 1, *, kind: str = SECCOMP) -> None:
        if count:
            self._profile[kind].labels(operation=UPDATE).inc(count)

    def deleted(self, count: int = 1, *, kind: str = SECCOMP) -> None:
        if count:
            self._profile[kind].labels(operation=DELETE).inc(count)

    def error(self, reason: str, *, kind: str = SECCOMP) -> None:
        self._error[kind].labels(reason=reason).inc()

    def reconciled(self, controller: str, seconds: float, *, failed: bool) -> None:
        """One pass of a node controller (a list or a watch event handled)."""
        self.reconciles.observe(controller, seconds, failed=failed)

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample, e.g. ``value("seccomp_profile_total",
        operation="update")``; names outside the operator's namespace are looked up in full
        (``value("controller_runtime_reconcile_total", controller=..., result=...)``)."""
        if name.startswith("controller_runtime_"):
            found = self.controllers.get_sample_value(name, labels)
        else:
            found = self.registry.get_sample_value(f"{NAMESPACE}_{name}", labels)
        return found or 0.0

    def spod_exposition(self) -> bytes:
        """``/metrics-spod``: the operator's counters."""
        return bytes(generate_latest(self.registry))

    def controllers_exposition(self) -> bytes:
        """``/metrics``: the reconcile loops."""
        return bytes(generate_latest(self.controllers))

    def exposition(self) -> bytes:
        """Both, for the plain listener of a program that serves no authenticated one."""
        return self.spod_exposition() + self.controllers_exposition()
