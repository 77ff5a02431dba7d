"""The process table: a process's container learned at fork and exec, kept after exit until read."""

from __future__ import annotations

import struct

from nodesync.enricher import process_events
from nodesync.enricher.containers import ContainerResolver, Unknown
from nodesync.enricher.processes import HOST, ProcessTable

A = "a" * 64
B = "b" * 64


def cgroup(container_id: str) -> str:
    return f"0::/kubepods/besteffort/pod0b6a3b5e-3f43-4a5e-9a8c-2a6f1b4c5d6e/{container_id}\n"


class Machine:
    """A fake /proc: pid -> cgroup text, None when gone."""

    def __init__(self) -> None:
        self.cgroups: dict[int, str] = {}
        self.now = 1000.0

    def read(self, pid: int) -> str | None:
        return self.cgroups.get(pid)

    def table(self, **kw: int) -> ProcessTable:
        return ProcessTable(self.read, clock=lambda: self.now, margin=5.0, **kw)


def test_a_child_is_read_at_fork_and_kept_after_it_exits_until_the_log_is_read_past_it() -> None:
    machine = Machine()
    table = machine.table()
    machine.cgroups[10] = cgroup(A)
    machine.cgroups[11] = cgroup(A)
    table.forked(10, 11, 11)
    del machine.cgroups[11]
    table.exited(11, 11)
    assert table.known(11) == A
    assert table.read_until(1004.0) == 0  # a record within the margin of the exit: keep it
    assert table.known(11) == A
    assert table.read_until(1005.5) == 1
    assert table.known(11) is None


def test_a_child_gone_before_its_fork_is_read_takes_its_parents_container() -> None:
    machine = Machine()
    table = machine.table()
    machine.cgroups[10] = cgroup(B)
    table.forked(10, 12, 12)  # 12 lived a millisecond
    assert table.known(12) == B


def test_with_parent_and_child_gone_the_parent_known_to_the_table_answers() -> None:
    machine = Machine()
    table = machine.table()
    machine.cgroups[20] = cgroup(A)
    table.forked(1, 20, 20)
    del machine.cgroups[20]
    table.forked(20, 21, 21)  # sh -c forked mkdir, and both are gone already
    assert table.known(21) == A
    table.forked(99, 22, 22)  # nothing known of 99
    assert table.known(22) is None
    assert table.counts.unknown_parents == 1


def test_threads_are_not_processes() -> None:
    machine = Machine()
    table = machine.table()
    machine.cgroups[30] = cgroup(A)
    table.forked(1, 30, 30)
    table.forked(30, 31, 30)  # a thread of 30
    table.exited(31, 30)
    assert table.known(31) is None
    assert table.known(30) == A
    assert table.counts.exits == 0


def test_exec_reads_again_a_process_moved_into_its_container() -> None:
    machine = Machine()
    table = machine.table()
    machine.cgroups[40] = "0::/user.slice/runc.scope\n"
    table.forked(1, 40, 40)
    assert table.known(40) == HOST
    machine.cgroups[40] = cgroup(B)  # the runtime moved it, then it execs the workload
    table.executed(40)
    assert table.known(40) == B


def test_a_reused_pid_is_the_new_process() -> None:
    machine = Machine()
    table = machine.table()
    machine.cgroups[50] = cgroup(A)
    table.forked(1, 50, 50)
    table.exited(50, 50)
    machine.cgroups[50] = cgroup(B)
    table.forked(1, 50, 50)
    assert table.known(50) == B
    assert table.exited_count() == 0


def test_the_exited_are_bounded_and_the_evicted_counted() -> None:
    machine = Machine()
    table = machine.table(max_exited=2)
    for pid in (60, 61, 62):
        machine.cgroups[pid] = cgroup(A)
        table.forked(1, pid, pid)
        table.exited(pid, pid)
    assert table.exited_count() == 2
    assert table.known(60) is None and table.known(62) == A
    assert table.counts.evicted == 1


def test_the_resolver_asks_what_is_remembered_of_a_gone_process() -> None:
    remembered = {7: A, 8: ""}
    resolver = ContainerResolver(read=lambda pid: None, remembered=remembered.get)
    assert resolver.lookup(7).container_id == A
    assert resolver.lookup(8).reason == Unknown.HOST
    assert resolver.lookup(9).reason == Unknown.VANISHED
    assert resolver.from_memory == 2


def datagram(what: int, data: bytes, ack: int = 0) -> bytes:
    body = process_events.CN_MSG.pack(1, 1, 0, ack, 16 + len(data), 0)
    body += process_events.EVENT_HEADER.pack(what, 0, 123) + data
    return process_events.NLMSGHDR.pack(16 + len(body), 3, 0, 0, 0) + body


def test_the_connectors_events_are_parsed() -> None:
    fork = process_events.parse(datagram(1, struct.pack("=IIII", 1, 1, 2, 2)))
    assert fork == process_events.Event(process_events.PROC_EVENT_FORK, (1, 1, 2, 2))
    execed = process_events.parse(datagram(2, struct.pack("=II", 3, 3)))
    assert execed == process_events.Event(process_events.PROC_EVENT_EXEC, (3, 3))
    exit_data = struct.pack("=IIIIII", 4, 4, 0, 17, 1, 1)
    exited = process_events.parse(datagram(0x80000000, exit_data))
    assert exited == process_events.Event(process_events.PROC_EVENT_EXIT, (4, 4))
    answer = process_events.parse(datagram(0, struct.pack("=I", 1), ack=0x5F1))
    assert answer == process_events.Event(process_events.PROC_EVENT_NONE, (1, 0x5F1))
    assert process_events.parse(datagram(0x200, bytes(24))) is None  # a comm change
    assert process_events.parse(b"short") is None
