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
import threading
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Callable, Iterable
from itertools import chain, compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, TextIO

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hooks.api import syscalls
from nodesync.enricher import epochs
from nodesync.enricher.auditlog import (
    PIDS,
    TOLD_FIELDS,
    AuditRecord,
    AvcRecord,
    Memo,
    SeccompRecord,
    Written,
    exe_text,
)
from nodesync.enricher.containers import ContainerRef

if TYPE_CHECKING:
    from nodesync.enricher.recorder import TellBatch

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
_Labels = tuple[str, str, str, str]  # node, namespace, pod, container
# what a SECCOMP record is counted by besides its pod: its exe, arch and syscall as written
_Counted = tuple[str, str, str]
# the beginning of a told SECCOMP record's line, up to its event
_HEAD: Final = '{"msg":"audit","timestamp":"'
MAX_EPOCH: Final = 65536  # distinct fields (or pids) counted in an epoch
_EVENT: Final = itemgetter(0)
_AVC_TEXT: Final = itemgetter(2)
_COUNTED: Final[Memo[_Counted]] = Memo(lambda fields: TOLD_FIELDS[fields][1:], ("", "", ""))


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
        self._write_text = self._each_line_of if write is not None else self._text
        self._include_unattributed = include_unattributed
        self._names: dict[tuple[int, int], str] = {}
        # Counted in plain dicts and exposed when scraped: a prometheus_client child's
        # labels() and inc() cost a fifth of the time of a record.
        self.counts: dict[tuple[str, str, str, str, str, str], int] = {}
        self.avc_counts: dict[tuple[str, str, str, str, str, str, str], int] = {}
        # the hot path's: (the pod's labels; (exe, arch, syscall) as written) -> count; and this
        # epoch's: SECCOMP fields as written -> count, with the labels of each pid (None: not
        # told); an epoch ends when a pid's labels change, or when it grows too large
        self._counted: dict[tuple[_Labels, _Counted], int] = {}
        self._epoch_counts: dict[str, int] = {}
        self._epoch_labels: dict[str, _Labels | None] = {}
        self._counting = threading.Lock()  # the epoch's end against a scrape
        self._exe_names: dict[str, str] = {}  # exe as written -> its text (scrapes only)
        self._pending: list[str] = []
        # this batch's: container id -> (the pod part of its lines, its labels); None: untold
        self._pod_parts: dict[str | None, tuple[str, _Labels] | None] = {}
        # a pod container (None: no pod's) -> the pod part of its lines and its labels
        self._parts_of_pods: dict[ContainerRef | None, tuple[str, _Labels]] = {}
        self._exe_parts: dict[str, str] = {}
        self._syscall_parts: dict[tuple[str, str], str] = {}
        # SECCOMP fields as written -> the end of their lines after the pod part
        self._tails: Memo[str] = Memo(self._tail, "")
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

    def _text(self, text: str) -> None:
        self._stream().write(text)

    def _each_line_of(self, text: str) -> None:
        for line in text.split("\n")[:-1]:
            self._write(line)

    def all_counts(self) -> dict[tuple[str, str, str, str, str, str], int]:
        """Every SECCOMP count by its labels (one C-level copy of each dict: safe against the
        writer)."""
        merged = dict(self.counts)
        with self._counting:
            counted = dict(self._counted)
            for labels_and_fields, value in self._epoch_counted().items():
                counted[labels_and_fields] = counted.get(labels_and_fields, 0) + value
        for (labels, (exe, arch, number)), value in counted.items():
            key = (*labels, self._exe_name(exe), self.syscall_name(int(arch, 16), int(number)))
            merged[key] = merged.get(key, 0) + value
        return merged

    def _epoch_counted(self) -> dict[tuple[_Labels, _Counted], int]:
        """This epoch's counts by (labels, (exe, arch, syscall)) (with ``_counting`` held)."""
        counted: dict[tuple[_Labels, _Counted], int] = {}
        labels_of = self._epoch_labels
        for fields, value in self._epoch_counts.items():
            labels = labels_of.get(PIDS[fields]) if fields else None
            if labels is not None:
                key = (labels, _COUNTED[fields])
                counted[key] = counted.get(key, 0) + value
        return counted

    def _end_epoch(self) -> None:
        """Count this epoch's records under their labels (with ``_counting`` held)."""
        counted = self._counted
        for key, value in self._epoch_counted().items():
            counted[key] = counted.get(key, 0) + value
        self._epoch_counts = {}
        self._epoch_labels.clear()

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

    def _pod_part(self, container_id: str | None) -> tuple[str, _Labels] | None:
        """``","type":"seccomp","node":...,"container":...,"executable":`` for a container's
        records (after their event) and their labels; None when they are not told."""
        ref = self._pods(container_id) if container_id is not None else None
        found: tuple[str, _Labels] | None = None
        if ref is not None or self._include_unattributed:
            found = self._parts_of_pods.get(ref)
            if found is None:
                namespace, pod, container = (
                    (ref.namespace, ref.pod, ref.container) if ref else ("", "", "")
                )
                part = (
                    f'","type":"seccomp","node":{_json(self.node)},"namespace":{_json(namespace)},'
                    f'"pod":{_json(pod)},"container":{_json(container)},"executable":'
                )
                if len(self._parts_of_pods) >= MAX_CACHED:
                    self._parts_of_pods.clear()  # the pods of long ago
                found = self._parts_of_pods[ref] = (part, (self.node, namespace, pod, container))
        self._pod_parts[container_id] = found
        return found

    def _syscall_part(self, arch: str, number: str) -> str:
        """``,"syscallID":N,"syscallName":"..."}``, the end of a line."""
        value = int(number)
        name = self.syscall_name(int(arch, 16), value)
        part = self._syscall_parts[arch, number] = (
            f',"syscallID":{value},"syscallName":{_json(name)}}}'
        )
        return part

    def _exe_part(self, exe: str) -> str:
        exe_part = self._exe_parts.get(exe)
        if exe_part is None:
            if len(self._exe_parts) >= MAX_CACHED:
                self._exe_parts.clear()
            exe_part = self._exe_parts[exe] = _json(exe_text(exe))
        return exe_part

    def _tail(self, fields: str) -> str:
        """The end of the lines of a SECCOMP text after their pod part, newline included."""
        pid, exe, arch, number = TOLD_FIELDS[fields]
        syscall = self._syscall_parts.get((arch, number))
        if syscall is None:
            syscall = self._syscall_part(arch, number)
        return f'{self._exe_part(exe)},"pid":{pid}{syscall}\n'

    def tell(self, batch: TellBatch) -> None:
        """Tell and count a batch, column by column (each a loop in C): a SECCOMP record's line
        is the head, its event, the part naming its pid's pod (made once per pid and batch) and
        the end of the line of its fields (made once per fields); an AVC record's line is made
        whole. The lines of records that are not told are left out."""
        heads: dict[str, str] = {"": ""}
        parts: dict[str, str] = {"": ""}
        labels: dict[str, _Labels | None] = {"": None}
        told: dict[str, bool] = {"": True}
        all_told = True
        pod_parts = self._pod_parts
        for pid, container_id in batch.containers.items():
            if not pid:
                continue
            found = (
                pod_parts[container_id]
                if container_id in pod_parts
                else self._pod_part(container_id)
            )
            if found is None:
                heads[pid] = parts[pid] = ""
                labels[pid] = None
                told[pid] = all_told = False
            else:
                heads[pid] = _HEAD
                parts[pid], labels[pid] = found
                told[pid] = True
        avc_lines: dict[str, str] = {"": ""}
        for text, (record, container_id) in batch.avc.items():
            fields_of_line = self._told_fields(record, container_id)
            avc_lines[text] = (
                "" if fields_of_line is None else orjson.dumps(fields_of_line).decode() + "\n"
            )
        pids = batch.pids
        records = batch.records
        rows: Iterable[tuple[str, ...]] = zip(
            map(heads.__getitem__, pids),
            map(_EVENT, records),
            map(parts.__getitem__, pids),
            map(self._tails.__getitem__, batch.fields),
            map(avc_lines.__getitem__, map(_AVC_TEXT, records)),
            strict=True,
        )
        if not all_told:
            rows = compress(rows, map(told.__getitem__, pids))
        text = "".join(chain.from_iterable(rows))
        # counted by fields in this epoch (a loop in C with strings' cached hashes), under their
        # pids' labels when the epoch ends or the counts are read
        with self._counting:
            epoch = self._epoch_labels
            epochs.join(epoch, labels, self._end_epoch)  # a pid of another pod: a new epoch
            _count_elements(self._epoch_counts, batch.fields)
            if len(self._epoch_counts) >= MAX_EPOCH or len(epoch) >= MAX_EPOCH:
                self._end_epoch()
        if text:
            self._write_text(text)
        self._pod_parts.clear()

    def seccomp(self, written: Written, container_id: str | None) -> None:
        """Tell and count one SECCOMP record, given as written."""
        event, pid, exe, arch, number = written
        found = (
            self._pod_parts[container_id]
            if container_id in self._pod_parts
            else self._pod_part(container_id)
        )
        if found is None:
            return
        part, labels = found
        syscall = self._syscall_parts.get((arch, number))
        if syscall is None:
            syscall = self._syscall_part(arch, number)
        self._pending.append(f'{_HEAD}{event}{part}{self._exe_part(exe)},"pid":{pid}{syscall}')
        key = (labels, (exe, arch, number))
        with self._counting:
            self._counted[key] = self._counted.get(key, 0) + 1

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
