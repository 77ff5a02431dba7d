"""The kernel's process events (the proc connector): every fork, exec and exit on the node.

A netlink socket of family ``NETLINK_CONNECTOR`` joined to the ``CN_IDX_PROC``
group, after a ``PROC_CN_MCAST_LISTEN`` request. What it needs:

- the host's network namespace (the connector exists only there: the log
  enricher's pod has ``hostNetwork``) and its PID namespace (``hostPID``);
- ``CAP_NET_ADMIN`` for the listen request on Linux before 6.6 (later kernels
  let anyone listen); the kernel answers the request, and a refusal is reported.

Events are read without blocking, by :meth:`ProcessEvents.drain`, in the
thread that reads the audit log (see :mod:`nodesync.enricher.processes`). When the
socket overflows (the reader was too slow) the kernel drops events and says so
(``ENOBUFS``): that is counted, and the records of the processes missed are
counted ``vanished`` as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nodesync.enricher.containers import read_cgroup
from nodesync.enricher.processes import ProcessTable
from nodesync.nodeio.logs import about

log = logging.getLogger(__name__)

NETLINK_CONNECTOR: Final = 11
CN_IDX_PROC: Final = 1
CN_VAL_PROC: Final = 1
NLMSG_DONE: Final = 3
PROC_CN_MCAST_LISTEN: Final = 1
PROC_CN_MCAST_IGNORE: Final = 2

PROC_EVENT_NONE: Final = 0x00000000  # the answer to a listen request
PROC_EVENT_FORK: Final = 0x00000001
PROC_EVENT_EXEC: Final = 0x00000002
PROC_EVENT_EXIT: Final = 0x80000000

NLMSGHDR: Final = struct.Struct("=IHHII")
CN_MSG: Final = struct.Struct("=IIIIHH")  # cb_id (idx, val), seq, ack, len, flags
EVENT_HEADER: Final = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
FORK: Final = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
PROCESS: Final = struct.Struct("=II")  # pid, tgid (exec, exit)
EVENT_AT: Final = NLMSGHDR.size + CN_MSG.size
DATA_AT: Final = EVENT_AT + EVENT_HEADER.size
RECEIVE_BUFFER: Final = 32 << 20
SO_RCVBUFFORCE: Final = 33


CAP_NET_ADMIN: Final = 12
_CAPABILITY_VERSION_3: Final = 0x20080522


def drop_capability(capability: int) -> bool:
    """Give up ``capability`` for good (effective and permitted sets); whether it was held.

    Once subscribed, the process events keep coming without it. With
    ``no_new_privs`` (``allowPrivilegeEscalation: false``) no later exec gets it back.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    header = struct.pack("=Ii", _CAPABILITY_VERSION_3, 0)
    data = ctypes.create_string_buffer(24)  # two struct __user_cap_data_struct
    if libc.capget(header, data) != 0:
        return False
    words = list(struct.unpack("=6I", data.raw))  # effective, permitted, inheritable; twice
    index, bit = divmod(capability, 32)
    mask = 1 << bit
    held = bool((words[index * 3] | words[index * 3 + 1]) & mask)
    if not held:
        return False
    words[index * 3] &= ~mask
    words[index * 3 + 1] &= ~mask
    words[index * 3 + 2] &= ~mask
    if libc.capset(header, struct.pack("=6I", *words)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset: {os.strerror(code)}")
    return True


class Unavailable(OSError):
    """The process events cannot be read here; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Event:
    what: int
    values: tuple[int, ...]


def parse(data: bytes | bytearray | memoryview) -> Event | None:
    """One datagram of the connector: a process event, or None for anything else."""
    if len(data) < DATA_AT:
        return None
    idx, val, _seq, ack = CN_MSG.unpack_from(data, NLMSGHDR.size)[:4]
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC):
        return None
    what = EVENT_HEADER.unpack_from(data, EVENT_AT)[0]
    if what == PROC_EVENT_FORK and len(data) >= DATA_AT + FORK.size:
        return Event(what, FORK.unpack_from(data, DATA_AT))
    if what in (PROC_EVENT_EXEC, PROC_EVENT_EXIT) and len(data) >= DATA_AT + PROCESS.size:
        return Event(what, PROCESS.unpack_from(data, DATA_AT))
    if what == PROC_EVENT_NONE and len(data) >= DATA_AT + 4:  # (error, the request's ack + 1)
        return Event(what, (struct.unpack_from("=I", data, DATA_AT)[0], ack))
    return None


def listen_request(op: int = PROC_CN_MCAST_LISTEN, ack: int = 0) -> bytes:
    """The request; the kernel's answer carries ``ack + 1`` (and goes to every listener)."""
    body = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, ack, 4, 0) + struct.pack("=I", op)
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), NLMSG_DONE, 0, 0, os.getpid()) + body


class ProcessEvents:
    """A subscription to the process events, fed into a :class:`ProcessTable`."""

    ACK: Final = 0x5F0  # marks our listen request: the kernel's answers go to every listener

    def __init__(self, table: ProcessTable) -> None:
        self.table = table
        try:
            self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as error:
            raise Unavailable(
                error.errno,
                f"no netlink connector socket ({error.strerror}): the kernel needs "
                "CONFIG_PROC_EVENTS",
            ) from None
        try:
            try:
                self._socket.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except OSError:
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self._socket.bind((0, CN_IDX_PROC))
            self._socket.send(listen_request(ack=self.ACK))
        except OSError as error:
            self._socket.close()
            hint = (
                "the proc connector exists only in the host's network namespace (hostNetwork)"
                if error.errno == errno.ECONNREFUSED
                else "joining the proc connector's group failed"
            )
            raise Unavailable(error.errno, f"{hint}: {error.strerror}") from None
        self._socket.setblocking(False)
        self._buffer = bytearray(256)
        self.answered: int | None = None  # the kernel's answer to our listen request (0: accepted)

    def fileno(self) -> int:
        return self._socket.fileno()

    def confirm(self, timeout: float = 2.0) -> None:
        """Wait for the kernel's answer to the listen request; :class:`Unavailable` if refused."""
        import select

        deadline_polls = max(int(timeout / 0.05), 1)
        for _ in range(deadline_polls):
            self.drain()
            if self.answered is not None:
                break
            select.select([self._socket], [], [], 0.05)
        if self.answered is None:
            log.warning(
                "the kernel did not answer the request for process events: if none arrive, "
                "short-lived processes are not attributed (listening needs CAP_NET_ADMIN before "
                "Linux 6.6, and the host's PID and user namespaces)"
            )
        elif self.answered:
            raise Unavailable(
                self.answered,
                f"the kernel refused to send process events ({os.strerror(self.answered)}): "
                "listening needs CAP_NET_ADMIN before Linux 6.6",
            )

    def drain(self) -> int:
        """Apply every pending event to the table; how many were applied."""
        table = self.table
        receive = self._socket.recv_into
        buffer = self._buffer
        applied = 0
        while True:
            try:
                size = receive(buffer)
            except BlockingIOError:
                return applied
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    table.counts.lost_events += 1
                    log.warning("process events were lost: the socket overflowed")
                    continue
                raise
            event = parse(memoryview(buffer)[:size])
            if event is None:
                continue
            applied += 1
            if event.what == PROC_EVENT_FORK:
                _, parent_tgid, child_pid, child_tgid = event.values
                table.forked(parent_tgid, child_pid, child_tgid)
            elif event.what == PROC_EVENT_EXEC:
                table.executed(event.values[1])
            elif event.what == PROC_EVENT_EXIT:
                table.exited(event.values[0], event.values[1])
            elif event.values[1] == self.ACK + 1 and self.answered is None:
                self.answered = event.values[0]

    def remembered(self, pid: int) -> str | None:
        """The container of a process that is gone (``""``: the host's), None if unknown.

        Events still queued are applied first: the process may have been created
        after the last drain.
        """
        found = self.table.known(pid)
        if found is None and self.drain():
            found = self.table.known(pid)
        return found

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.send(listen_request(PROC_CN_MCAST_IGNORE))
        self._socket.close()


def open_process_events(proc_dir: Path | str) -> ProcessEvents | None:
    """The process events of this node, or None (said at WARNING) when they cannot be read."""
    table = ProcessTable(lambda pid: read_cgroup(pid, proc_dir))
    try:
        events = ProcessEvents(table)
        events.confirm()
    except Unavailable as missing:
        log.warning(
            "process events cannot be read (%s): records of processes that exit before they are "
            "read cannot be attributed and are counted as vanished",
            missing.strerror or missing,
            extra=about("", ""),
        )
        return None
    dropped = drop_capability(CAP_NET_ADMIN)
    log.info(
        "following process creation (proc connector)%s",
        "; CAP_NET_ADMIN given up" if dropped else "",
        extra=about("", ""),
    )
    return events
