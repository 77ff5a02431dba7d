"""Prometheus metrics, named as the Go operator names them.

``security_profiles_operator_seccomp_profile_total{operation="update"|"delete"}``
and ``security_profiles_operator_seccomp_profile_error_total{reason=...}``.
Each ``Metrics`` has its own registry, so nothing is created at import time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

NAMESPACE = "security_profiles_operator"
UPDATE = "update"
DELETE = "delete"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._profile = Counter(
            "seccomp_profile",
            "Counter about seccomp profile operations.",
            ["operation"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._error = Counter(
            "seccomp_profile_error",
            "Counter about seccomp profile errors.",
            ["reason"],
            namespace=NAMESPACE,
            registry=self.registry,
        )

    def updated(self, count: int = 1) -> None:
        if count:
            self._profile.labels(operation=UPDATE).inc(count)

    def deleted(self, count: int = 1) -> None:
        if count:
            self._profile.labels(operation=DELETE).inc(count)

    def error(self, reason: str) -> None:
        self._error.labels(reason=reason).inc()

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample, e.g. ``value("seccomp_profile_total",
        operation="update")``."""
        found = self.registry.get_sample_value(f"{NAMESPACE}_{name}", labels)
        return found or 0.0

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
