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

Each told SECCOMP record also counts in
``security_profiles_operator_seccomp_profile_audit_total{node,namespace,pod,container,executable,
syscall}`` and each told AVC record in
``security_profiles_operator_selinux_profile_audit_total{node,namespace,pod,container,executable,
scontext,tcontext}``, the Go operator's names and labels.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TextIO

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hooks.api import syscalls
from nodesync.enricher.auditlog import (
    AuditRecord,
    AvcRecord,
    SeccompRecord,
    ToldBatch,
    Written,
    exe_text,
)
from nodesync.enricher.containers import ContainerRef

METRIC_NAMESPACE: Final = "security_profiles_operator"
METRIC_NAME: Final = "seccomp_profile_audit"  # exposed with the _total suffix
SELINUX_METRIC_NAME: Final = "selinux_profile_audit"
LABELS: Final = ("node", "namespace", "pod", "container", "executable", "syscall")
SELINUX_LABELS: Final = (
    "node",
    "namespace",
    "pod",
    "container",
    "executable",
    "scontext",
    "tcontext",
)
MAX_EXE_NAMES: Final = 65536


class _Counts(Collector):
    """The two audit counters, computed from the enricher's counts when scraped."""

    def __init__(self, enricher: LogEnricher) -> None:
        self.enricher = enricher

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            f"{METRIC_NAMESPACE}_{METRIC_NAME}",
            "Seccomp audit records, by the container and executable that made them.",
            labels=list(LABELS),
        )
        for labels, value in self.enricher.all_counts().items():
            family.add_metric(list(labels), value)
        yield family
        avc = CounterMetricFamily(
            f"{METRIC_NAMESPACE}_{SELINUX_METRIC_NAME}",
            "SELinux AVC records, by the container and executable that made them.",
            labels=list(SELINUX_LABELS),
        )
        for avc_labels, value in dict(self.enricher.avc_counts).items():
            avc.add_metric(list(avc_labels), value)
        yield avc


MAX_CACHED: Final = 4096
# the pod part of a container's lines, their counts by syscall part, and their ends by fields
_PodPart = tuple[str, dict[tuple[str, str], int], dict[str, tuple[str, tuple[str, str]]]]
MAX_ENDS: Final = 65536  # per pod part: SECCOMP fields as written -> the end of their lines


def _json(text: str) -> str:
    return orjson.dumps(text).decode()


class LogEnricher:
    """Turns records into log lines and counter increments.

    ``pods`` maps a container id to its pod container (a dict's ``get`` will do);
    ``write`` receives each line without its newline; without it, lines go to
    ``out`` (default standard output), one write per batch of the recorder.

    On the recorder's hot path (:class:`nodesync.enricher.recorder.Teller`) a SECCOMP
    record's line is put together from pieces made once: the part naming its
    pod (per container, per batch, as pods come and go), its executable (per
    ``exe=`` as written) and its syscall (per arch and number), with its event
    and pid as written; the same line as :meth:`fields` gives, byte for byte.
    """

    def __init__(
        self,
        node: str,
        registry: CollectorRegistry,
        pods: Callable[[str], ContainerRef | None],
        write: Callable[[str], None] | None = None,
        *,
        include_unattributed: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self.node = node
        self._pods = pods
        self._out = out
        self._write = write or (lambda line: self._stream().write(line + "\n"))
        self._write_lines = self._each_line if write is not None else self._batch
        self._include_unattributed = include_unattributed
        self._names: dict[tuple[int, int], str] = {}
        # Counted in plain dicts and exposed when scraped: a prometheus_client child's
        # labels() and inc() cost a fifth of the time of a record.
        self.counts: dict[tuple[str, str, str, str, str, str], int] = {}
        self.avc_counts: dict[tuple[str, str, str, str, str, str, str], int] = {}
        # the hot path's: the pod's labels -> (exe as written, the syscall part of a line)
        # -> count
        self._told: dict[tuple[str, str, str, str], dict[tuple[str, str], int]] = {}
        self._exe_names: dict[str, str] = {}  # exe as written -> its text (scrapes only)
        self._pending: list[str] = []
        # this batch's: container id -> (the pod part of its lines, its counts); ("", ...): untold
        self._pod_parts: dict[str, _PodPart] = {}
        self._exe_parts: dict[str, str] = {}
        self._syscall_parts: dict[tuple[str, str], str] = {}
        self._syscall_names: dict[str, str] = {}  # the syscall part of a line -> the name
        # the pod part of a line -> SECCOMP fields as written -> (the end of the line, its syscall)
        self._ends: dict[str, dict[str, tuple[str, tuple[str, str]]]] = {}
        self.collector = _Counts(self)
        registry.register(self.collector)

    def _stream(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def _batch(self, lines: list[str]) -> None:
        lines.append("")
        self._stream().write("\n".join(lines))

    def _each_line(self, lines: list[str]) -> None:
        for line in lines:
            self._write(line)

    def all_counts(self) -> dict[tuple[str, str, str, str, str, str], int]:
        """Every SECCOMP count by its labels (one C-level copy of each dict: safe against the
        writer)."""
        merged = dict(self.counts)
        for labels, counts in list(self._told.items()):
            for (exe, part), value in list(counts.items()):
                key = (*labels, self._exe_name(exe), self._syscall_names[part])
                merged[key] = merged.get(key, 0) + value
        return merged

    def _exe_name(self, raw: str) -> str:
        name = self._exe_names.get(raw)
        if name is None:
            if len(self._exe_names) >= MAX_EXE_NAMES:
                self._exe_names.clear()
            name = self._exe_names[raw] = exe_text(raw)
        return name

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

    def _told_fields(self, record: AuditRecord, container_id: str | None) -> dict[str, Any] | None:
        """The fields of a record to tell, counted; None if it is not told."""
        ref = self._pods(container_id) if container_id is not None else None
        if ref is None and not self._include_unattributed:
            return None
        line = self.fields(record, ref)
        if isinstance(record, SeccompRecord):
            key = (
                self.node,
                line["namespace"],
                line["pod"],
                line["container"],
                record.exe,
                line["syscallName"],
            )
            self.counts[key] = self.counts.get(key, 0) + 1
        elif isinstance(record, AvcRecord):
            avc = (
                self.node,
                line["namespace"],
                line["pod"],
                line["container"],
                record.exe,
                record.scontext,
                record.tcontext,
            )
            self.avc_counts[avc] = self.avc_counts.get(avc, 0) + 1
        return line

    def enrich(self, record: AuditRecord, container_id: str | None) -> dict[str, Any] | None:
        """Log and count one record; the fields logged, None if it was not logged."""
        line = self._told_fields(record, container_id)
        if line is not None:
            self._write(orjson.dumps(line).decode())
        return line

    def __call__(self, record: AuditRecord, container_id: str | None) -> None:
        """The ``each`` callback of :meth:`nodesync.enricher.recorder.Recorder.consume`."""
        self.enrich(record, container_id)

    # --- the recorder's hot path (nodesync.enricher.recorder.Teller)
    # -------------------------------

    def _pod_part(self, container_id: str | None) -> _PodPart:
        """``,"type":"seccomp","node":...,"container":...,"executable":`` for a container's records,
        their counts and the ends of their lines; an empty part when they are not told."""
        ref = self._pods(container_id) if container_id is not None else None
        if ref is None and not self._include_unattributed:
            found: _PodPart = ("", {}, {})
        else:
            namespace, pod, container = (
                (ref.namespace, ref.pod, ref.container) if ref else ("", "", "")
            )
            part = (
                f',"type":"seccomp","node":{_json(self.node)},"namespace":{_json(namespace)},'
                f'"pod":{_json(pod)},"container":{_json(container)},"executable":'
            )
            labels = (self.node, namespace, pod, container)
            if part not in self._ends and len(self._ends) >= MAX_CACHED:
                self._ends.clear()  # the pods of long ago
            found = (part, self._told.setdefault(labels, {}), self._ends.setdefault(part, {}))
        self._pod_parts[container_id or ""] = found
        return found

    def _syscall_part(self, arch: str, number: str) -> str:
        """``,"syscallID":N,"syscallName":"..."}``, the end of a line."""
        value = int(number)
        name = self.syscall_name(int(arch, 16), value)
        part = self._syscall_parts[arch, number] = (
            f',"syscallID":{value},"syscallName":{_json(name)}}}'
        )
        self._syscall_names[part] = name
        return part

    def _exe_part(self, exe: str) -> str:
        exe_part = self._exe_parts.get(exe)
        if exe_part is None:
            if len(self._exe_parts) >= MAX_CACHED:
                self._exe_parts.clear()
            exe_part = self._exe_parts[exe] = _json(exe_text(exe))
        return exe_part

    def tell(
        self,
        batch: ToldBatch,
        seccomp: Mapping[str, tuple[str | None, int, tuple[str, str, str, str]]],
        avc: Mapping[str, tuple[AuditRecord, str | None]],
    ) -> None:
        """Tell and count a batch: each distinct SECCOMP text is put together once (the end of
        its lines after the event) and counted with its number of records, then every line is
        its event and that end, in the batch's order."""
        ends: dict[str, str] = {}
        pod_parts = self._pod_parts
        for fields, (container_id, records, told) in seccomp.items():
            found = pod_parts.get(container_id or "")
            if found is None:
                found = self._pod_part(container_id)
            part, counts, end_of = found
            if not part:
                ends[fields] = ""
                continue
            known = end_of.get(fields)
            if known is None:
                known = self._end(part, end_of, fields, told)
            ends[fields] = known[0]
            counts[known[1]] = counts.get(known[1], 0) + records
        avc_lines: dict[str, str] = {}
        for text, (record, container_id) in avc.items():
            fields_of_line = self._told_fields(record, container_id)
            avc_lines[text] = (
                "" if fields_of_line is None else orjson.dumps(fields_of_line).decode()
            )
        lines = [
            f'{{"msg":"audit","timestamp":"{event}"{end}' if fields else end
            for event, fields, text in batch.records
            if (end := ends[fields] if fields else avc_lines.get(text, ""))
        ]
        if lines:
            self._write_lines(lines)
        self._pod_parts.clear()

    def _end(
        self,
        part: str,
        end_of: dict[str, tuple[str, tuple[str, str]]],
        fields: str,
        told: tuple[str, str, str, str],
    ) -> tuple[str, tuple[str, str]]:
        """The end of the lines of a SECCOMP text after their event, and what they are counted
        by: (the executable as written, the syscall part)."""
        pid, exe, arch, number = told
        syscall = self._syscall_parts.get((arch, number))
        if syscall is None:
            syscall = self._syscall_part(arch, number)
        if len(end_of) >= MAX_ENDS:
            end_of.clear()
        known = end_of[fields] = (
            f'{part}{self._exe_part(exe)},"pid":{pid}{syscall}',
            (exe, syscall),
        )
        return known

    def seccomp(self, written: Written, container_id: str | None) -> None:
        """Tell and count one SECCOMP record, given as written."""
        event, pid, exe, arch, number = written
        found = self._pod_parts.get(container_id or "")
        if found is None:
            found = self._pod_part(container_id)
        part, counts, _ = found
        if not part:
            return
        syscall = self._syscall_parts.get((arch, number))
        if syscall is None:
            syscall = self._syscall_part(arch, number)
        self._pending.append(
            f'{{"msg":"audit","timestamp":"{event}"{part}{self._exe_part(exe)},"pid":{pid}{syscall}'
        )
        key = (exe, syscall)
        counts[key] = counts.get(key, 0) + 1

    def record(self, record: AuditRecord, container_id: str | None) -> None:
        """Tell and count a record given in full (AVC, or SECCOMP written in an unusual order)."""
        line = self._told_fields(record, container_id)
        if line is not None:
            self._pending.append(orjson.dumps(line).decode())

    def told(self) -> None:
        """The end of a batch: write its lines; who is which pod is asked again next batch."""
        if self._pending:
            self._write_lines(self._pending)
            self._pending = []
        self._pod_parts.clear()
