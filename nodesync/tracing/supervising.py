"""Start a command under a filter and answer every call the filter hands us, until it has all gone.

The command is forked and loads the filter itself, just before ``execve``;
the filter's listener is copied from it with ``pidfd_getfd`` (the child
cannot send it: every call it makes after loading waits for our answer).
We are a child subreaper, so descendants whose parent exits are ours to reap,
and the listener says ``POLLHUP`` once no process of the command is left:
that is the end of the run, not the exit of the first process (a daemon it
started is still part of it). Ctrl-C after the command itself has exited
stops waiting for such processes.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import select
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Final

from nodesync.tracing import kernel
from nodesync.tracing.kernel import FilterProgram, Notification, Unsupported

log = logging.getLogger(__name__)

Decide = Callable[[Notification], "int | None"]  # None: let the call go on; else its errno

ATTACH_TIMEOUT: Final = 10.0  # seconds for the child to load its filter
SPIN_LIMIT: Final = 2_000_000_000  # the child's wait for the go: far longer than ATTACH_TIMEOUT
STRAGGLERS_AFTER: Final = 1.0  # seconds after the command exits before we say we wait
_FORWARDED: Final = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_RESET_IN_CHILD: Final = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)


class CommandNotFound(FileNotFoundError):
    pass


class CommandFailedToStart(OSError):
    pass


@dataclass(frozen=True, slots=True)
class Exit:
    """How the command ended: its exit code, or the signal that ended it."""

    code: int | None
    signal: int | None

    @property
    def returncode(self) -> int:
        """What a shell would say: the code, or 128 + the signal."""
        return self.code if self.code is not None else 128 + (self.signal or 0)

    @classmethod
    def of(cls, status: int) -> Exit:
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status))
        return cls(os.waitstatus_to_exitcode(status), None)


def executable_of(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The file ``execve`` runs for ``argv[0]``, looked up in ``PATH`` as a shell would."""
    if not argv:
        raise CommandNotFound(errno.ENOENT, "no command given")
    name = argv[0]
    if "/" in name:
        if not os.path.exists(name):
            raise CommandNotFound(errno.ENOENT, f"{name}: no such file")
        return name
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise CommandNotFound(errno.ENOENT, f"{name}: command not found")
    return found


def _check_executable(path: str) -> None:
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise CommandFailedToStart(errno.EACCES, os.strerror(errno.EACCES))


def _child(
    argv: Sequence[str],
    executable: str,
    env: Mapping[str, str],
    program: FilterProgram,
    *,
    pipe: int,
    go: mmap.mmap,
) -> None:
    """In the forked child: load the filter, wait for the parent to hold its listener, exec.

    Between loading the filter and ``execve`` the child makes no system call
    (those would be the filter's to judge, and a profile may refuse them): it
    tells the parent where the listener will be beforehand, and waits for the
    go on a shared page, spinning.
    """
    code = 126
    try:
        for number in _RESET_IN_CHILD:
            signal.signal(number, signal.SIG_DFL)
        # seccomp() returns the lowest free descriptor: that one.
        probe = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        os.close(probe)
        os.write(pipe, b"%d\n" % probe)
        program.load()
        code = 127
        for _ in range(SPIN_LIMIT):
            if go[0]:
                break
        os.execve(executable, list(argv), dict(env))  # noqa: S606 - the user's command, as given
    except OSError as error:
        os.write(pipe, f"{code} {error.errno} {error.strerror or error}\n".encode())
    finally:
        os._exit(code)


class _Signals:
    """While the command runs: wake the loop on SIGCHLD, forward stop requests, note Ctrl-C."""

    def __init__(self, child: int) -> None:
        self.child = child
        self.interrupted = False
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self._previous: dict[int, object] = {}
        self._previous_wakeup = signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        self._install(signal.SIGCHLD, lambda number, frame: None)
        self._install(signal.SIGINT, self._interrupt)
        for number in _FORWARDED:
            self._install(number, self._forward)

    def _install(self, number: int, handler: Callable[[int, FrameType | None], None]) -> None:
        self._previous[number] = signal.signal(number, handler)

    def _interrupt(self, number: int, frame: FrameType | None) -> None:
        self.interrupted = True  # the terminal sent it to the command too

    def _forward(self, number: int, frame: FrameType | None) -> None:
        try:
            os.kill(self.child, number)
        except ProcessLookupError:
            self.interrupted = True

    def drain(self) -> None:
        try:
            while os.read(self.wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self.wake_read)
        os.close(self.wake_write)


def _read_line(fd: int) -> str:
    """One line from the child's pipe, a byte at a time (so that the next line stays there)."""
    data = b""
    while not data.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        data += byte
    return data.decode(errors="replace")


def _parse_failure(message: str) -> tuple[str, int, str]:
    """The child's report ``<exit code> <errno> <text>``."""
    code, number, text = [*message.strip().split(" ", 2), "", "", ""][:3]
    return code, int(number) if number.isdigit() else 0, text


def _start_failure(pid: int, message: str) -> Exception:
    os.waitpid(pid, 0)
    code, number, text = _parse_failure(message)
    if code == "126":
        return Unsupported(f"the command could not load its seccomp filter: {text}")
    return CommandFailedToStart(number, text)


def _attach(pid: int, pipe: int, go: mmap.mmap) -> int:
    """The listener of the child ``pid``, copied from it once its filter is loaded."""
    first = _read_line_nowait(pipe, wait=True)
    if not first.strip().isdigit():
        raise _start_failure(pid, first)
    target = int(first)
    pidfd = os.pidfd_open(pid)
    try:
        deadline = time.monotonic() + ATTACH_TIMEOUT
        pause = 0.0001
        while True:
            try:
                listener = kernel.pidfd_getfd(pidfd, target)
            except OSError as error:
                if error.errno not in (errno.EBADF, errno.ESRCH):
                    raise Unsupported(f"pidfd_getfd on the command: {error.strerror}") from None
            else:
                if kernel.is_listener(listener):
                    kernel.wake_synchronously(listener)
                    go[0] = 1
                    return listener
                os.close(listener)  # not loaded yet: what sits there is something else
            message = _read_line_nowait(pipe, wait=False)
            if message:
                raise _start_failure(pid, message)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise Unsupported("the command did not load its seccomp filter in time")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
    finally:
        os.close(pidfd)


def _read_line_nowait(fd: int, wait: bool) -> str:
    if not wait and not select.select([fd], [], [], 0)[0]:
        return ""
    return _read_line(fd)


def run(
    argv: Sequence[str],
    program: FilterProgram,
    decide: Decide,
    *,
    env: Mapping[str, str] | None = None,
    on_stragglers: Callable[[], None] | None = None,
) -> Exit:
    """Run ``argv`` under ``program``, answering each notification with ``decide``; how it ended.

    Raises :class:`CommandNotFound`, :class:`CommandFailedToStart` (``execve``
    failed) or :class:`~.kernel.Unsupported` (the machine cannot do this).
    """
    env = dict(os.environ if env is None else env)
    executable = executable_of(argv, env)
    _check_executable(executable)
    kernel.check()
    kernel.become_subreaper()
    read_end, write_end = os.pipe()
    go = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        os.close(read_end)
        _child(argv, executable, env, program, pipe=write_end, go=go)
    os.close(write_end)
    try:
        listener = _attach(pid, read_end, go)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        go.close()
    signals = _Signals(pid)
    try:
        status = _serve(
            listener, pid, read_end, decide, signals=signals, on_stragglers=on_stragglers
        )
    finally:
        signals.restore()
        os.close(listener)
        os.close(read_end)
    return status


def _serve(
    listener: int,
    pid: int,
    pipe: int,
    decide: Decide,
    *,
    signals: _Signals,
    on_stragglers: Callable[[], None] | None,
) -> Exit:
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(signals.wake_read, select.POLLIN)
    status: int | None = None
    exited_at = 0.0
    said_waiting = False
    failed_exec = ""
    woken = True  # reap once before the first poll: a SIGCHLD before our handler is not lost
    while True:
        if woken:
            status, reaped = _reap(pid, status)
            if reaped:
                exited_at = time.monotonic()
                failed_exec = _read_line_nowait(pipe, wait=False)
            woken = False
        if status is not None:
            if signals.interrupted:
                log.warning(
                    "interrupted: no longer waiting for the processes the command left running"
                )
                break
            if not said_waiting and time.monotonic() - exited_at >= STRAGGLERS_AFTER:
                said_waiting = True
                if on_stragglers is not None:
                    on_stragglers()
        timeout = None if status is None or said_waiting else STRAGGLERS_AFTER * 1000
        hung_up = False
        for fd, events in poller.poll(timeout):
            if fd == listener:
                if events & select.POLLIN:
                    _answer(listener, decide)
                elif events & (select.POLLHUP | select.POLLERR):
                    hung_up = True
            else:
                signals.drain()
                woken = True
        if hung_up:
            break
    while status is None:  # the listener hung up: every process of the command is gone
        status, _ = _reap(pid, status, block=True)
    failed_exec = failed_exec or _read_line_nowait(pipe, wait=False)
    if failed_exec:
        raise _start_failure_reaped(failed_exec)
    return Exit.of(status)


def _start_failure_reaped(message: str) -> OSError:
    _, number, text = _parse_failure(message)
    return CommandFailedToStart(number, text)


def _answer(listener: int, decide: Decide) -> None:
    notification = kernel.receive(listener)
    if notification is None:
        return
    answer: int | None = None
    try:
        answer = decide(notification)
    finally:  # whatever happens, the caller must not wait forever
        kernel.respond(listener, notification.id, answer)


def _reap(pid: int, status: int | None, block: bool = False) -> tuple[int | None, bool]:
    """Reap every child that has exited; the command's status once it has, and whether now."""
    reaped_now = False
    while True:
        try:
            child, child_status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return status, reaped_now
        if child == 0:
            return status, reaped_now
        if child == pid:
            status, reaped_now = child_status, True
            if block:
                return status, reaped_now
