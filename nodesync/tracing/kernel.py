"""The kernel interfaces of seccomp user notification, through ctypes and ioctl.

Needs Linux 5.6 or later (``SECCOMP_RET_USER_NOTIF`` 5.0, ``SECCOMP_USER_NOTIF_FLAG_CONTINUE``
5.5, ``pidfd_getfd`` 5.6), built with ``CONFIG_SECCOMP_FILTER``; no root: a process
without ``CAP_SYS_ADMIN`` sets ``no_new_privs`` before loading the filter, as
seccomp requires. :func:`check` says which of these is missing.

Syscall numbers come from the project's libseccomp table
(``hooks/api/syscalls.py``), so this
works on every architecture the table knows.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import platform
import struct
from dataclasses import dataclass
from typing import Final

from hooks.api import syscalls

SECCOMP_SET_MODE_FILTER: Final = 1
SECCOMP_GET_NOTIF_SIZES: Final = 3

FILTER_FLAG_TSYNC: Final = 1
FILTER_FLAG_LOG: Final = 2
FILTER_FLAG_SPEC_ALLOW: Final = 4
FILTER_FLAG_NEW_LISTENER: Final = 8
FILTER_FLAG_WAIT_KILLABLE_RECV: Final = 32

USER_NOTIF_FLAG_CONTINUE: Final = 1

RET_USER_NOTIF: Final = 0x7FC00000

PR_SET_NO_NEW_PRIVS: Final = 38
PR_SET_CHILD_SUBREAPER: Final = 36
CAP_SYS_ADMIN: Final = 21

NOTIF: Final = struct.Struct("=QIIiIQ6Q")  # struct seccomp_notif (with struct seccomp_data)
RESPONSE: Final = struct.Struct("=QqiI")  # struct seccomp_notif_resp
SIZES: Final = struct.Struct("=HHH")  # struct seccomp_notif_sizes

LISTENER_LINK: Final = "anon_inode:seccomp notify"


class Unsupported(RuntimeError):
    """This machine (kernel, permissions, libraries) cannot run a command under a listener."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One syscall the kernel holds until we answer: who calls what, with which arguments."""

    id: int
    pid: int  # the calling thread's id, in our pid namespace
    nr: int
    arch: int  # the AUDIT_ARCH_* of the caller
    args: tuple[int, ...]


def _ioc_layout() -> tuple[int, int, int]:
    """(read bit, write bit, direction shift) of the _IOC encoding of this architecture."""
    machine = platform.machine().lower()
    if machine.startswith(("ppc", "powerpc", "mips", "sparc", "alpha")):
        return 2, 4, 29
    return 2, 1, 30


def _iowr(kind: str, number: int, size: int, read: bool = True) -> int:
    read_bit, write_bit, shift = _ioc_layout()
    direction = write_bit | (read_bit if read else 0)
    return (direction << shift) | (size << 16) | (ord(kind) << 8) | number


IOCTL_RECV: Final = _iowr("!", 0, NOTIF.size)
IOCTL_SEND: Final = _iowr("!", 1, RESPONSE.size)
IOCTL_SET_FLAGS: Final = _iowr("!", 4, 8, read=False)
NOTIF_FD_SYNC_WAKE_UP: Final = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _number(name: str) -> int:
    number = syscalls.number_of(syscalls.NATIVE, name)
    if number is None:
        raise Unsupported(f"this architecture has no {name} system call")
    return number


def _syscall(name: str, *args: ctypes.c_long | ctypes.c_void_p) -> int:
    function = _libc().syscall
    function.restype = ctypes.c_long
    result = int(function(ctypes.c_long(_number(name)), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")
    return result


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class FilterProgram:
    """A BPF program (an array of ``struct sock_filter``), ready to load in a forked child.

    Everything the child needs is allocated here, before the fork, so that the
    child only makes the two system calls of :meth:`load`.
    """

    def __init__(self, program: bytes, flags: int = 0) -> None:
        if not program or len(program) % 8:
            raise ValueError("a BPF program is a non-empty array of 8-byte instructions")
        self._code = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._code))
        self.flags = flags | FILTER_FLAG_NEW_LISTENER
        self._seccomp = _number("seccomp")
        self._prctl = _libc().prctl
        self._raw = _libc().syscall
        self._raw.restype = ctypes.c_long
        self.no_new_privs = not has_capability(CAP_SYS_ADMIN)

    def load(self) -> int:
        """Load the filter on the calling thread; its listener fd. Raises OSError."""
        if self.no_new_privs and self._prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
        fd = int(
            self._raw(
                ctypes.c_long(self._seccomp),
                ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                ctypes.c_long(self.flags),
                ctypes.c_void_p(ctypes.addressof(self._fprog)),
            )
        )
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(code)}")
        return fd


def has_capability(capability: int) -> bool:
    """Whether this process has ``capability`` in its effective set."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> capability & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def become_subreaper() -> None:
    """Adopt our descendants whose parent exits, so that we reap them and see them go."""
    if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(code)}")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A copy of file descriptor ``target_fd`` of the process of ``pidfd`` (ptrace access
    needed)."""
    return _syscall("pidfd_getfd", ctypes.c_long(pidfd), ctypes.c_long(target_fd), ctypes.c_long(0))


def is_listener(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == LISTENER_LINK
    except OSError:
        return False


def wake_synchronously(listener: int) -> bool:
    """Ask the kernel to switch straight between caller and us (Linux 6.6); whether it will."""
    try:
        fcntl.ioctl(listener, IOCTL_SET_FLAGS, NOTIF_FD_SYNC_WAKE_UP)  # a value, not a pointer
    except OSError:
        return False
    return True


def receive(listener: int) -> Notification | None:
    """The next notification (blocks); None when it went away (the caller was killed)."""
    buffer = bytearray(NOTIF.size)  # the kernel wants it zeroed
    try:
        fcntl.ioctl(listener, IOCTL_RECV, buffer, True)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.EINTR):
            return None
        raise
    nid, pid, _flags, nr, arch, _ip, *args = NOTIF.unpack(buffer)
    return Notification(nid, pid, nr, arch, tuple(args))


def respond(listener: int, notification_id: int, error: int | None) -> bool:
    """Let the call go on (``error`` None) or fail it with ``error``; False if the caller is
    gone."""
    if error is None:
        response = RESPONSE.pack(notification_id, 0, 0, USER_NOTIF_FLAG_CONTINUE)
    else:
        response = RESPONSE.pack(notification_id, 0, -error, 0)
    try:
        fcntl.ioctl(listener, IOCTL_SEND, bytearray(response), True)
    except OSError as failure:
        if failure.errno == errno.ENOENT:
            return False
        raise
    return True


def check() -> None:
    """Raise :class:`Unsupported` saying what this machine lacks to run a command under a
    listener."""
    need = "Linux 5.6 or later with CONFIG_SECCOMP_FILTER"
    try:
        _number("seccomp")
        _number("pidfd_getfd")
    except ValueError as error:
        raise Unsupported(str(error)) from None
    sizes = (ctypes.c_ushort * 3)()
    try:
        _syscall(
            "seccomp",
            ctypes.c_long(SECCOMP_GET_NOTIF_SIZES),
            ctypes.c_long(0),
            ctypes.c_void_p(ctypes.addressof(sizes)),
        )
    except OSError as error:
        raise Unsupported(
            f"the kernel does not offer seccomp user notification ({error.strerror}); it needs "
            f"{need}, "
            "and a process that may call seccomp() (not blocked by a seccomp filter of its own)"
        ) from None
    notif_size, response_size, _data_size = sizes
    if notif_size < NOTIF.size or response_size < RESPONSE.size:
        raise Unsupported(f"unexpected seccomp notification sizes {tuple(sizes)} from the kernel")
    pidfd = os.pidfd_open(os.getpid())
    try:
        copy = pidfd_getfd(pidfd, pidfd)
        os.close(copy)
    except OSError as error:
        raise Unsupported(
            f"pidfd_getfd is not available ({error.strerror}): it needs {need}, and ptrace access "
            "to our own children (kernel.yama.ptrace_scope 0 or 1; a container needs "
            "CAP_SYS_PTRACE "
            "or a seccomp profile that allows pidfd_getfd)"
        ) from None
    finally:
        os.close(pidfd)
