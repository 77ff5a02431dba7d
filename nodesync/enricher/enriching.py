"""The log enricher (``enableLogEnricher``): audit records told with the pod they came from.

For every SECCOMP or AVC record of a process in a pod's container, one JSON
object on one line::

    {"msg": "audit", "timestamp": "1700000000.123:42", "type": "seccomp", "node": "n1",
     "namespace": "default", "pod": "web", "container": "nginx", "executable": "/usr/sbin/nginx",
     "pid": 7, "syscallID": 83, "syscallName": "mkdir"}

``timestamp`` is the record's event id as audit prints it (``SECONDS.MILLIS:SERIAL``).
AVC records add ``scontext``, ``tcontext``, ``tclass`` and ``perm`` (the
permissions, space-separated); an AVC record has no syscall of its own, so
``syscallID`` and ``syscallName`` are null there. Records of processes that
are in no known pod container are not logged (unless ``include_unattributed``).

Each SECCOMP record also counts in
``security_profiles_operator_seccomp_profile_audit_total{node,namespace,pod,container,syscall}``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hooks.api import syscalls
from nodesync.enricher.auditlog import AuditRecord, SeccompRecord
from nodesync.enricher.containers import ContainerRef

METRIC_NAMESPACE: Final = "security_profiles_operator"
METRIC_NAME: Final = "seccomp_profile_audit"  # exposed with the _total suffix
LABELS: Final = ("node", "namespace", "pod", "container", "syscall")


class _Counts(Collector):
    """``security_profiles_operator_seccomp_profile_audit_total`` from a dict of counts."""

    def __init__(self, counts: dict[tuple[str, str, str, str, str], int]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            f"{METRIC_NAMESPACE}_{METRIC_NAME}",
            "Counter of seccomp audit records, by the container that made them.",
            labels=list(LABELS),
        )
        for labels, value in list(self.counts.items()):  # one C-level copy: safe against the writer
            family.add_metric(list(labels), value)
        yield family


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")


class LogEnricher:
    """Turns records into log lines and counter increments.

    ``pods`` maps a container id to its pod container (a dict's ``get`` will do);
    ``write`` receives each line without its newline.
    """

    def __init__(
        self,
        node: str,
        registry: CollectorRegistry,
        pods: Callable[[str], ContainerRef | None],
        write: Callable[[str], None] = _stdout,
        *,
        include_unattributed: bool = False,
    ) -> None:
        self.node = node
        self._pods = pods
        self._write = write
        self._include_unattributed = include_unattributed
        self._names: dict[tuple[int, int], str] = {}
        # Counted in a plain dict and exposed when scraped: a prometheus_client child's
        # labels() and inc() cost a fifth of the time of a record.
        self.counts: dict[tuple[str, str, str, str, str], int] = {}
        registry.register(_Counts(self.counts))

    def syscall_name(self, arch: int, number: int) -> str:
        key = (arch, number)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = syscalls.name_of(arch, number) or f"syscall-{number}"
        return name

    def fields(self, record: AuditRecord, ref: ContainerRef | None) -> dict[str, Any]:
        """The fields of the line of one record (pure)."""
        line: dict[str, Any] = {
            "msg": "audit",
            "timestamp": f"{record.timestamp:.3f}:{record.serial}",
            "type": record.kind,
            "node": self.node,
            "namespace": ref.namespace if ref is not None else "",
            "pod": ref.pod if ref is not None else "",
            "container": ref.container if ref is not None else "",
            "executable": record.exe,
            "pid": record.pid,
        }
        if isinstance(record, SeccompRecord):
            line["syscallID"] = record.syscall
            line["syscallName"] = self.syscall_name(record.arch, record.syscall)
        else:
            line["syscallID"] = None
            line["syscallName"] = None
            line["scontext"] = record.scontext
            line["tcontext"] = record.tcontext
            line["tclass"] = record.tclass
            line["perm"] = " ".join(record.perms)
        return line

    def enrich(self, record: AuditRecord, container_id: str | None) -> dict[str, Any] | None:
        """Log and count one record; the fields logged, None if it was not logged."""
        ref = self._pods(container_id) if container_id is not None else None
        if ref is None and not self._include_unattributed:
            return None
        line = self.fields(record, ref)
        self._write(orjson.dumps(line).decode())
        if isinstance(record, SeccompRecord):
            key = (
                self.node,
                line["namespace"],
                line["pod"],
                line["container"],
                line["syscallName"],
            )
            self.counts[key] = self.counts.get(key, 0) + 1
        return line

    def __call__(self, record: AuditRecord, container_id: str | None) -> None:
        """The ``each`` callback of :meth:`nodesync.enricher.recorder.Recorder.consume`."""
        self.enrich(record, container_id)
