"""What recorded containers did, accumulated from audit records; and whether records were lost.

The recorder keeps, per container id, the distinct (audit arch, syscall number)
pairs of its SECCOMP records and the (target type, class) -> permissions of its
AVC records. Ids, not pods, are the key on the hot path: a container's first
records often arrive before the kubelet has put its id in the pod's status, so
the id is mapped to (namespace, pod, container) when the recording is read out
(:meth:`Recorder.seccomp` / :meth:`Recorder.selinux`) with the index of
:func:`nodesync.enricher.containers.container_index`. Syscall numbers are named then too,
with the libseccomp table of :mod:`hooks.api.syscalls`.

Lost records make a silently incomplete profile, the worst outcome of a
recording. :class:`LossDetector` recognises what the kernel says when it drops
audit records (``audit: rate limit exceeded``, ``audit: backlog limit exceeded``,
``audit: printk limit exceeded``, ``audit: audit_lost=N ...``,
``kauditd_printk_skb: N callbacks suppressed``), in the audit log, the kernel
log or ``/dev/kmsg``, and the growth of the kernel's lost counter
(``auditctl -s``). Without auditd, audit records go through printk, which is
rate-limited: reading them from the kernel log is flagged from the start.
"""

from __future__ import annotations

import logging
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any, Final, Protocol, runtime_checkable

from hooks.api import syscalls
from nodesync.enricher import epochs
from nodesync.enricher.auditlog import (
    CALLS,
    PIDS,
    AuditRecord,
    AvcRecord,
    SeccompRecord,
    Told,
    Written,
    parse,
    scan,
    scan_text,
    scan_told,
)
from nodesync.enricher.containers import ContainerRef, Lookup, Unknown
from nodesync.enricher.losses import Loss, LossDetector

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SeccompTrace:
    calls: set[tuple[int, int]] = field(default_factory=set)  # (audit arch, number)
    written: set[tuple[str, str]] = field(default_factory=set)  # the same, as logged (hex, decimal)
    records: int = 0

    def pairs(self) -> set[tuple[int, int]]:
        """Every (audit arch, number) seen, however it was accounted."""
        for arch, number in self.written:
            try:
                self.calls.add((int(arch, 16), int(number)))
            except ValueError:  # not hex: a mangled line, not a record
                continue
        self.written.clear()
        return self.calls


@dataclass(slots=True)
class AvcTrace:
    allow: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (ttype, tclass)
    source_types: set[str] = field(default_factory=set)
    records: int = 0


@dataclass(frozen=True, slots=True)
class RecordedSyscalls:
    """What one container called: names, and the SCMP_ARCH_* they were called in."""

    names: tuple[str, ...]
    architectures: tuple[str, ...]
    unknown: tuple[str, ...]  # "arch=c000003e syscall=999" for numbers the table lacks
    records: int


@dataclass(frozen=True, slots=True)
class RecordedAvcs:
    """What one container was denied: target type -> class -> permissions."""

    allow: Mapping[str, Mapping[str, tuple[str, ...]]]
    source_types: tuple[str, ...]
    records: int


@dataclass(slots=True)
class Counts:
    lines: int = 0
    seccomp: int = 0
    avc: int = 0
    attributed: int = 0
    vanished: int = 0  # the process was gone before its cgroup could be read
    host: int = 0  # not a container process


@runtime_checkable
class Teller(Protocol):
    """Who tells each record as it is accounted (the log enricher), on the recorder's hot path.

    A batch comes whole (:meth:`tell`, a :class:`TellBatch`): its records in order, as
    :func:`nodesync.enricher.auditlog.scan_batch` found them, their fields, the container of
    each pid, and each AVC record parsed with its container. A batch that regular
    expression cannot read comes record by record: SECCOMP records as the text they were
    written with, others in full, and :meth:`told` ends it.
    """

    def tell(self, batch: TellBatch) -> None: ...

    def seccomp(self, written: Written, container_id: str | None) -> None:
        """``written``: (event, pid, exe, arch, syscall) as
        :func:`nodesync.enricher.auditlog.scan_told`
        gives them."""

    def record(self, record: AuditRecord, container_id: str | None) -> None: ...

    def told(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TellBatch:
    """A batch as the recorder accounted it, for the log enricher."""

    records: list[Told]  # (event, fields, AVC text) in the order they were written
    fields: list[str]  # each record's fields ("" for an AVC record)
    containers: Mapping[str, str | None]  # pid as written -> its container id ("" -> None)
    avc: Mapping[str, tuple[AuditRecord, str | None]]  # AVC text -> (record, container id)


_FIELDS_OF: Final = itemgetter(1)
# distinct fields (or pids) of an epoch that end it (see Recorder._settle)
MAX_WRITTEN: Final = 65536


_TELLERS: dict[type, bool] = {}


def _is_teller(each: object) -> bool:
    """``isinstance(each, Teller)``, remembered per type (the check walks the protocol each
    time)."""
    kind = type(each)
    known = _TELLERS.get(kind)
    if known is None:
        known = _TELLERS[kind] = isinstance(each, Teller)
    return known


class Recorder:
    """Accumulates SECCOMP and AVC records per container id.

    ``resolve`` maps a pid to its container (``ContainerResolver.lookup``). Without
    ``count_lines``, ``counts.lines`` stays 0: counting the lines of a batch read whole is a
    search of all its text, for nobody but tests and benchmarks (``spo log-enricher`` does not).
    """

    def __init__(
        self,
        resolve: Callable[[int], Lookup],
        detector: LossDetector | None = None,
        *,
        count_lines: bool = True,
    ) -> None:
        self._resolve = resolve
        self._count_lines = count_lines
        self.detector = detector if detector is not None else LossDetector()
        self.counts = Counts()
        self._seccomp: dict[str, SeccompTrace] = {}
        self._avc: dict[str, AvcTrace] = {}
        # The batches told since the last epoch: the fields of their SECCOMP records, not yet in
        # the traces (a set's update with strings: a loop in C, every batch), and the container
        # of each pid (an epoch ends when a pid's container changes, or when it is read).
        self._written: set[str] = set()
        self._epoch_containers: dict[str, str | None] = {"": None}

    def _count_unknown(self, found: Lookup, records: int = 1) -> None:
        if found.reason == Unknown.VANISHED:
            self.counts.vanished += records
        else:
            self.counts.host += records

    def add(self, record: AuditRecord) -> str | None:
        """Account one record; the container id it was attributed to (None: not a container's)."""
        found = self._resolve(record.pid) if record.pid else Lookup(None, Unknown.HOST)
        self._account(record, found)
        return found.container_id

    def _account(self, record: AuditRecord, found: Lookup) -> None:
        container_id = found.container_id
        if isinstance(record, SeccompRecord):
            self.counts.seccomp += 1
            if container_id is None:
                self._count_unknown(found)
                return
            self.counts.attributed += 1
            trace = self._seccomp.get(container_id)
            if trace is None:
                trace = self._seccomp[container_id] = SeccompTrace()
            trace.calls.add((record.arch, record.syscall))
            trace.records += 1
            return
        self.counts.avc += 1
        if container_id is None:
            self._count_unknown(found)
            return
        self.counts.attributed += 1
        avc = self._avc.get(container_id)
        if avc is None:
            avc = self._avc[container_id] = AvcTrace()
        avc.allow.setdefault((record.target_type, record.tclass), set()).update(record.perms)
        avc.source_types.add(record.source_type)
        avc.records += 1

    def consume(
        self, lines: Iterable[str], each: Callable[[AuditRecord, str | None], None] | None = None
    ) -> int:
        """Parse and account ``lines``; ``each(record, container_id)`` sees every record.

        Lines that are not records are checked for reports of lost records.
        Returns how many records were accounted. This is the hot path: without
        ``each``, SECCOMP records (the bulk) are scanned for their pid, arch and
        number only and accounted inline; each pid is resolved once per call.
        When ``each`` is a :class:`Teller` (the log enricher), SECCOMP records
        are scanned for what it tells too, and handed over as text.
        """
        if each is not None and _is_teller(each):
            told = lines if isinstance(lines, list) else list(lines)
            teller: Teller = each  # type: ignore[assignment]
            return self._consume_told("\n".join(told), len(told), teller, told)
        if each is not None:
            return self._consume_records(lines, each)
        resolve = self._resolve
        traces = self._seccomp
        observe = self.detector.observe
        by_text: dict[str, Lookup] = {}
        host = Lookup(None, Unknown.HOST)
        total = seccomp = attributed = counted = 0
        for line in lines:
            total += 1
            scanned = scan(line)
            if scanned is None:
                if "exceeded" in line or "audit_lost" in line or "suppressed" in line:
                    observe(line)
                continue
            counted += 1
            if isinstance(scanned, AvcRecord):
                self.add(scanned)
                continue
            pid, arch, number = scanned
            seccomp += 1
            found = by_text.get(pid)
            if found is None:
                number_of_pid = int(pid)
                found = by_text[pid] = resolve(number_of_pid) if number_of_pid else host
            container_id = found.container_id
            if container_id is None:
                self._count_unknown(found)
                continue
            attributed += 1
            trace = traces.get(container_id)
            if trace is None:
                trace = traces[container_id] = SeccompTrace()
            trace.written.add((arch, number))
            trace.records += 1
        if self._count_lines:
            self.counts.lines += total
        self.counts.seccomp += seccomp
        self.counts.attributed += attributed
        return counted

    def consume_text(
        self, text: str, each: Callable[[AuditRecord, str | None], None] | None = None
    ) -> int:
        """:meth:`consume` of the lines of ``text`` (joined by newlines, as
        :meth:`nodesync.enricher.following.Follower.poll_text` gives them): for the log
        enricher, the batch is read whole, never split into lines unless it must be."""
        if each is not None and _is_teller(each):
            teller: Teller = each  # type: ignore[assignment]
            return self._consume_told(
                text, text.count("\n") + 1 if self._count_lines else 0, teller
            )
        return self.consume(text.split("\n"), each)

    def _consume_told(
        self, text: str, line_count: int, teller: Teller, lines: list[str] | None = None
    ) -> int:
        """``text``: ``line_count`` lines joined by newlines (``lines``, when they were given)."""
        batch = scan_text(text)
        if batch is None:
            return self._consume_told_lines(text.split("\n") if lines is None else lines, teller)
        if batch.mentions_loss:
            observe = self.detector.observe
            for line in text.split("\n") if lines is None else lines:
                if "exceeded" in line or "audit_lost" in line or "suppressed" in line:
                    observe(line)
        # Column by column, each a loop in C (map over a dict's __getitem__, a count, set.update):
        # the Python loops here run once per pid of the batch and once per AVC record.
        fields = list(map(_FIELDS_OF, batch.records))
        per_pid: dict[str, int] = {}
        _count_elements(per_pid, map(PIDS.__getitem__, fields))
        rows_of_others = per_pid.pop("", 0)  # AVC records and other lines
        resolve = self._resolve
        traces = self._seccomp
        host = Lookup(None, Unknown.HOST)
        containers: dict[str, str | None] = {"": None}
        attributed = 0
        for pid, count in per_pid.items():
            found = resolve(int(pid)) if int(pid) else host
            container_id = containers[pid] = found.container_id
            if container_id is None:
                self._count_unknown(found, count)
                continue
            trace = traces.get(container_id)
            if trace is None:
                trace = traces[container_id] = SeccompTrace()
            trace.records += count
            attributed += count
        # the fields of this epoch's records, each put in its pid's container's trace when read
        epoch = self._epoch_containers
        epochs.join(epoch, containers, self._settle)  # a pid of another container: a new epoch
        self._written.update(fields)
        if len(self._written) >= MAX_WRITTEN or len(epoch) >= MAX_WRITTEN:
            self._settle()
        avc: dict[str, tuple[AuditRecord, str | None]] = {}
        if batch.avc:
            for avc_text in batch.avc:
                record = parse("type=" + avc_text)
                if record is None:
                    continue
                found = resolve(record.pid) if record.pid else host
                self._account(record, found)
                avc[avc_text] = (record, found.container_id)
        records = len(fields) - rows_of_others
        if self._count_lines:
            self.counts.lines += line_count
        self.counts.seccomp += records
        self.counts.attributed += attributed
        teller.tell(TellBatch(batch.records, fields, containers, avc))
        return records + len(avc)

    def _settle(self) -> None:
        """Put the (arch, syscall) of the fields told in this epoch in the traces of the
        containers of their pids; a new epoch."""
        traces = self._seccomp
        containers = self._epoch_containers
        for fields in self._written:
            container_id = containers.get(PIDS[fields])
            if container_id is not None:
                trace = traces.get(container_id)
                if trace is not None:
                    trace.written.add(CALLS[fields])
        self._written.clear()
        containers.clear()

    def _consume_told_lines(self, lines: Iterable[str], teller: Teller) -> int:
        resolve = self._resolve
        traces = self._seccomp
        observe = self.detector.observe
        tell = teller.seccomp
        # pid as written -> (its container id, the container's trace); a lookup that found
        # no container is counted again for each record (vanished or host)
        by_text: dict[str, tuple[str | None, SeccompTrace | None, Lookup]] = {}
        host = Lookup(None, Unknown.HOST)
        total = seccomp = attributed = counted = 0
        for line in lines:
            total += 1
            scanned = scan_told(line)
            if scanned is None:
                if "exceeded" in line or "audit_lost" in line or "suppressed" in line:
                    observe(line)
                continue
            counted += 1
            if type(scanned) is tuple:
                pid = scanned[1]
                known = by_text.get(pid)
                if known is None:
                    number_of_pid = int(pid)
                    found = resolve(number_of_pid) if number_of_pid else host
                    trace = None
                    if found.container_id is not None:
                        trace = traces.get(found.container_id)
                        if trace is None:
                            trace = traces[found.container_id] = SeccompTrace()
                    known = by_text[pid] = (found.container_id, trace, found)
                container_id, trace, found = known
                seccomp += 1
                if trace is None:
                    self._count_unknown(found)
                else:
                    attributed += 1
                    trace.written.add((scanned[3], scanned[4]))
                    trace.records += 1
                tell(scanned, container_id)
                continue
            record: AuditRecord = scanned  # type: ignore[assignment]
            found = resolve(record.pid) if record.pid else host
            self._account(record, found)
            teller.record(record, found.container_id)
        if self._count_lines:
            self.counts.lines += total
        self.counts.seccomp += seccomp
        self.counts.attributed += attributed
        teller.told()
        return counted

    def _consume_records(
        self, lines: Iterable[str], each: Callable[[AuditRecord, str | None], None]
    ) -> int:
        observe = self.detector.observe
        seen: dict[int, Lookup] = {}
        host = Lookup(None, Unknown.HOST)
        total = counted = 0
        for line in lines:
            total += 1
            record = parse(line)
            if record is None:
                if "exceeded" in line or "audit_lost" in line or "suppressed" in line:
                    observe(line)
                continue
            counted += 1
            pid = record.pid
            found = seen.get(pid)
            if found is None:
                found = seen[pid] = self._resolve(pid) if pid else host
            self._account(record, found)
            each(record, found.container_id)
        if self._count_lines:
            self.counts.lines += total
        return counted

    def container_ids(self) -> set[str]:
        return set(self._seccomp) | set(self._avc)

    def seccomp_of(self, container_id: str) -> RecordedSyscalls | None:
        if self._written:
            self._settle()
        trace = self._seccomp.get(container_id)
        if trace is None:
            return None
        names: set[str] = set()
        arches: set[str] = set()
        unknown: list[str] = []
        for arch, number in sorted(trace.pairs()):
            name = syscalls.name_of(arch, number)
            scmp_arch = syscalls.scmp_arch_of(arch, number)
            if name is None:
                unknown.append(f"arch={arch:x} syscall={number}")
                continue
            names.add(name)
            if scmp_arch is not None:
                arches.add(scmp_arch)
        return RecordedSyscalls(
            tuple(sorted(names)), tuple(sorted(arches)), tuple(unknown), trace.records
        )

    def selinux_of(self, container_id: str) -> RecordedAvcs | None:
        trace = self._avc.get(container_id)
        if trace is None:
            return None
        allow: dict[str, dict[str, tuple[str, ...]]] = {}
        for (ttype, tclass), perms in sorted(trace.allow.items()):
            allow.setdefault(ttype, {})[tclass] = tuple(sorted(perms))
        return RecordedAvcs(allow, tuple(sorted(trace.source_types)), trace.records)

    def seccomp(
        self,
        index: Mapping[str, ContainerRef],
        wanted: Callable[[ContainerRef], bool] | None = None,
    ) -> dict[ContainerRef, RecordedSyscalls]:
        """The recorded syscalls of every container the index knows (and ``wanted`` accepts)."""
        found: dict[ContainerRef, RecordedSyscalls] = {}
        for container_id in self._seccomp:
            ref = index.get(container_id)
            if ref is None or (wanted is not None and not wanted(ref)):
                continue
            recorded = self.seccomp_of(container_id)
            if recorded is not None:
                found[ref] = recorded
        return found

    def selinux(
        self,
        index: Mapping[str, ContainerRef],
        wanted: Callable[[ContainerRef], bool] | None = None,
    ) -> dict[ContainerRef, RecordedAvcs]:
        found: dict[ContainerRef, RecordedAvcs] = {}
        for container_id in self._avc:
            ref = index.get(container_id)
            if ref is None or (wanted is not None and not wanted(ref)):
                continue
            recorded = self.selinux_of(container_id)
            if recorded is not None:
                found[ref] = recorded
        return found

    def forget(self, container_id: str) -> None:
        """Drop a container's traces (its profile was written, or it is not recorded)."""
        if self._written:
            self._settle()
        self._seccomp.pop(container_id, None)
        self._avc.pop(container_id, None)

    def snapshot(self) -> dict[str, Any]:
        """What was accumulated, as JSON (saved with the audit log position by the log enricher)."""
        if self._written:
            self._settle()
        seccomp = {
            container_id: sorted([arch, number] for arch, number in trace.pairs())
            for container_id, trace in self._seccomp.items()
        }
        avc = {
            container_id: {
                "allow": sorted(
                    [ttype, tclass, sorted(perms)] for (ttype, tclass), perms in trace.allow.items()
                ),
                "sources": sorted(trace.source_types),
            }
            for container_id, trace in self._avc.items()
        }
        return {
            "seccomp": seccomp,
            "avc": avc,
            "losses": [asdict(loss) for loss in self.detector.losses],
        }

    def restore(self, saved: Mapping[str, Any]) -> int:
        """Add a :meth:`snapshot` back; how many containers it named. Bad entries are skipped."""
        containers: set[str] = set()
        for container_id, pairs in (saved.get("seccomp") or {}).items():
            try:
                calls = {(int(arch), int(number)) for arch, number in pairs}
            except (TypeError, ValueError):
                log.warning("skipping the unreadable saved trace of container %s", container_id)
                continue
            trace = self._seccomp.setdefault(str(container_id), SeccompTrace())
            trace.calls.update(calls)
            containers.add(str(container_id))
        for container_id, entry in (saved.get("avc") or {}).items():
            try:
                allow = [
                    (str(t), str(c), {str(p) for p in perms}) for t, c, perms in entry["allow"]
                ]
                sources = {str(source) for source in entry.get("sources") or ()}
            except (TypeError, ValueError, KeyError):
                log.warning("skipping the unreadable saved AVCs of container %s", container_id)
                continue
            avc = self._avc.setdefault(str(container_id), AvcTrace())
            for ttype, tclass, perms in allow:
                avc.allow.setdefault((ttype, tclass), set()).update(perms)
            avc.source_types.update(sources)
            containers.add(str(container_id))
        for loss in saved.get("losses") or ():
            try:
                self.detector.add(
                    Loss(
                        str(loss["reason"]),
                        str(loss["detail"]),
                        int(loss.get("count", 0)),
                        float(loss.get("at", 0.0)),
                        bool(loss.get("ongoing", False)),
                    )
                )
            except (TypeError, ValueError, KeyError):
                continue
        return len(containers)
