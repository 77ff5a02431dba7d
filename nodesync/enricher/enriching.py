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
from itertools import compress
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
# the beginning of every line told, up to its record's event
_HEAD: Final = '{"msg":"audit","timestamp":"'
MAX_EPOCH: Final = 65536  # distinct fields (or pids) counted in an epoch
_EVENT: Final = itemgetter(0)
_AVC_TEXT: Final = itemgetter(2)
_COUNTED: Final[Memo[_Counted]] = Memo(lambda fields: TOLD_FIELDS[fields][1:], ("", "", ""))
# the rests of lines kept (about 250 bytes each: at most some 10 MiB with the dict), and the
# pids they name
MAX_RESTS: Final = 32768
_UNSEEN: Final = object()


class _Rests(dict[str, str]):
    """SECCOMP fields as written -> the rest of their records' lines after the event: the part
    naming their pid's pod, their executable, pid and syscall, and the newline; "" when they
    are not told (and for the rows of AVC records and other lines). Made on the first lookup,
    then a plain dict hit (``map(rests.__getitem__, column)`` runs in C), and kept from batch to
    batch while their pid's records are told with the same pod part (:meth:`told_as`)."""

    def __init__(self, tail: Callable[[str], str]) -> None:
        super().__init__({"": ""})
        self._tail = tail
        self._parts: dict[str, str | None] = {}  # pid -> its pod part (None: not told)
        self._fields_of: dict[str, list[str]] = {}  # pid -> the fields made with its part

    def make_room(self, pids: int) -> None:
        """Before a batch of ``pids`` pids is told: forget them all if they would be too many."""
        if len(self._parts) + pids > MAX_RESTS:
            self._parts.clear()
            self._forget_rests()

    def told_as(self, pid: str, part: str | None) -> None:
        """``pid``'s records are told with ``part`` in this batch (None: they are not told)."""
        known = self._parts.get(pid, _UNSEEN)
        if known is part or known == part:
            return
        for fields in self._fields_of.pop(pid, ()):
            del self[fields]
        self._parts[pid] = part

    def _forget_rests(self) -> None:
        self.clear()
        self[""] = ""
        self._fields_of.clear()

    def __missing__(self, fields: str) -> str:
        pid = PIDS[fields]
        part = self._parts[pid]
        rest = "" if part is None else part + self._tail(fields)
        if len(self) >= MAX_RESTS:
            self._forget_rests()
        self[fields] = rest
        known = self._fields_of.get(pid)
        if known is None:
            self._fields_of[pid] = [fields]
        else:
            known.append(fields)
        return rest


def _json(text: str) -> str:
    return orjson.dumps(text).decode()


class LogEnricher:
    """Turns records into log lines and counter increments.

    ``pods`` maps a container id to its pod container (a dict's ``get`` will do);
    ``write`` receives each line without its newline; without it, lines go to
    ``out`` (default standard output), one write per batch of the recorder.

    On the recorder's hot path (:class:`nodesync.enricher.recorder.Teller`) a SECCOMP
    record's line is the head every line begins with, its event as written and the rest of
    its line, made once per fields as written (:class:`_Rests`) from pieces made once: the
    part naming its pod (asked per container and batch, as pods come and go), its executable
    (per ``exe=`` as written) and its syscall (per arch and number); the same line as
    :meth:`fields` gives, byte for byte.
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
        # SECCOMP fields as written -> the rest of their lines after their event
        self._rests = _Rests(self._tail)
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
        """Tell and count a batch, column by column (each a loop in C). Every line begins with
        the same head (``{"msg":"audit","timestamp":"``): the batch's text is that head, the
        record's event and the rest of its line, for each record told. The rest of a SECCOMP
        record's line is made once per fields as written (while its pid's pod stays the same,
        :class:`_Rests`), an AVC record's line whole; "" for a record that is not told (and for
        a row of other lines), whose row is left out."""
        rests = self._rests
        labels: dict[str, _Labels | None] = {"": None}
        pod_parts = self._pod_parts
        containers = batch.containers
        rests.make_room(len(containers))
        for pid, container_id in containers.items():
            if not pid:
                continue
            found = (
                pod_parts[container_id]
                if container_id in pod_parts
                else self._pod_part(container_id)
            )
            if found is None:
                rests.told_as(pid, None)
                labels[pid] = None
            else:
                rests.told_as(pid, found[0])
                labels[pid] = found[1]
        records = batch.records
        lines = list(map(rests.__getitem__, batch.fields))  # each row's rest of its line
        if batch.avc:
            avc_rests = {
                text: self._avc_rest(record, container_id)
                for text, (record, container_id) in batch.avc.items()
            }
            for at in compress(range(len(records)), map(_AVC_TEXT, records)):
                lines[at] = avc_rests.get(records[at][2], "")  # "": not an AVC record after all
        told = list(filter(None, lines))
        events: Iterable[str] = map(_EVENT, records)  # "" in the row of an AVC record
        if len(told) < len(lines):
            events = compress(events, lines)
        pieces = [_HEAD] * (3 * len(told))
        pieces[1::3] = events
        pieces[2::3] = told
        text = "".join(pieces)
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

    def _avc_rest(self, record: AuditRecord, container_id: str | None) -> str:
        """The line of an AVC record after the head every line begins with, newline included;
        "" when it is not told."""
        fields_of_line = self._told_fields(record, container_id)
        if fields_of_line is None:
            return ""
        line = orjson.dumps(fields_of_line).decode()
        if not line.startswith(_HEAD):  # "msg" and "timestamp" come first (fields)
            raise AssertionError(f"a line that does not begin with {_HEAD!r}: {line!r}")
        return line[len(_HEAD) :] + "\n"

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
