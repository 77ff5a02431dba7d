"""The container of every process, learned when it is created and kept after it exits.

The log enricher reads a record after the process made it; a process that has
exited by then has no ``/proc/<pid>/cgroup`` to read (``sh -c 'mkdir ...'``
forks a ``mkdir`` that lives a millisecond). This table learns each process's
container when the kernel reports its creation (:mod:`nodesync.enricher.process_events`):

- on fork, from the child's own cgroup file, or, when the child is already
  gone, from its parent's (a child starts in its parent's cgroup), or from what
  the table knows of the parent;
- on exec, again from the process's cgroup file (a runtime moves a container's
  first process into the container's cgroup between its fork and its exec);
- on exit, the entry is kept until the audit log has been read past the exit
  (:meth:`ProcessTable.read_until`), so that every record the process made
  finds it.

Threads are not processes: audit records name the thread group (``pid=`` is the
tgid), and a thread's fork or exit changes nothing here.

The table is used only for processes that are gone
(:class:`nodesync.enricher.containers.ContainerResolver`
reads ``/proc`` first). It lives in the audit-log thread: the process events
are drained there, before each batch of records is accounted, so that every
process created before a record was written is known when the record is read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nodesync.enricher.containers import container_id_of_cgroup

HOST: Final = ""  # a process in no container (known, unlike a missing entry)
READ_MARGIN: Final = 5.0  # seconds of audit time past an exit before its records are all read
MAX_EXITED: Final = 65536


@dataclass(slots=True)
class TableCounts:
    forks: int = 0
    execs: int = 0
    exits: int = 0
    unknown_parents: int = 0  # a fork whose child and parent were both gone, and unknown
    evicted: int = 0  # exited entries dropped early because the table was full
    lost_events: int = 0  # the kernel dropped process events (the socket overflowed)


class ProcessTable:
    """tgid -> container id (``HOST`` for none) of live processes and of recently exited ones."""

    def __init__(
        self,
        read_cgroup: Callable[[int], str | None],
        *,
        clock: Callable[[], float] = time.time,
        margin: float = READ_MARGIN,
        max_exited: int = MAX_EXITED,
    ) -> None:
        self._read = read_cgroup
        self._clock = clock
        self._margin = margin
        self._max_exited = max_exited
        self._live: dict[int, str] = {}
        self._exited: OrderedDict[int, tuple[float, str]] = OrderedDict()
        self.counts = TableCounts()

    def __len__(self) -> int:
        return len(self._live) + len(self._exited)

    def _container_of(self, pid: int) -> str | None:
        """What ``/proc/<pid>/cgroup`` says now; None when the process is gone."""
        text = self._read(pid)
        if text is None:
            return None
        return container_id_of_cgroup(text) or HOST

    def known(self, pid: int) -> str | None:
        """What the table knows of ``pid`` (``HOST`` or a container id), None if nothing."""
        found = self._live.get(pid)
        if found is not None:
            return found
        exited = self._exited.get(pid)
        return exited[1] if exited is not None else None

    def forked(self, parent_tgid: int, child_pid: int, child_tgid: int) -> None:
        if child_pid != child_tgid:
            return  # a new thread of an existing process
        self.counts.forks += 1
        found = self._container_of(child_tgid)
        if found is None:
            found = self._container_of(parent_tgid)
        if found is None:
            found = self.known(parent_tgid)
        if found is None:
            self.counts.unknown_parents += 1
            return
        self._exited.pop(child_tgid, None)  # a reused pid: the old process's records are read
        self._live[child_tgid] = found

    def executed(self, tgid: int) -> None:
        self.counts.execs += 1
        found = self._container_of(tgid)
        if found is not None:
            self._live[tgid] = found

    def exited(self, pid: int, tgid: int) -> None:
        if pid != tgid:
            return  # a thread, not the process
        self.counts.exits += 1
        found = self._live.pop(tgid, None)
        if found is None:
            return
        self._exited[tgid] = (self._clock(), found)
        self._exited.move_to_end(tgid)
        if len(self._exited) > self._max_exited:
            self._exited.popitem(last=False)
            self.counts.evicted += 1

    def read_until(self, audit_time: float) -> int:
        """The audit log has been read up to a record of ``audit_time`` (seconds since the epoch):
        forget the processes that exited more than the margin before it; how many were forgotten."""
        limit = audit_time - self._margin
        forgotten = 0
        exited = self._exited
        while exited:
            pid, (when, _) = next(iter(exited.items()))
            if when > limit:
                break
            del exited[pid]
            forgotten += 1
        return forgotten

    def exited_count(self) -> int:
        return len(self._exited)
