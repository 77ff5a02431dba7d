"""Record every syscall a command and all its processes and threads make."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hooks.api import syscalls
from nodesync.tracing import filters, supervising
from nodesync.tracing.kernel import FilterProgram, Notification
from nodesync.tracing.supervising import Exit


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a command called: (audit arch, syscall number) pairs, and who called."""

    calls: frozenset[tuple[int, int]]
    threads: int  # distinct thread ids seen calling
    processes: int  # distinct processes (thread groups) among them
    exit: Exit

    def names(self) -> tuple[str, ...]:
        """The syscall names, sorted (numbers the table does not name are in :meth:`unnamed`)."""
        found = (syscalls.name_of(arch, number) for arch, number in self.calls)
        return tuple(sorted({name for name in found if name is not None}))

    def architectures(self) -> tuple[str, ...]:
        """The SCMP_ARCH_* of the calls, sorted."""
        found = (syscalls.scmp_arch_of(arch, number) for arch, number in self.calls)
        return tuple(sorted({arch for arch in found if arch is not None}))

    def unnamed(self) -> tuple[str, ...]:
        return tuple(
            f"arch=0x{arch:x} syscall={number}"
            for arch, number in sorted(self.calls)
            if syscalls.name_of(arch, number) is None
        )


def thread_group(tid: int) -> int:
    """The process of thread ``tid`` (itself when it cannot be read)."""
    try:
        with open(f"/proc/{tid}/status", encoding="utf-8", errors="replace") as status:
            for line in status:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


class _Recorder:
    def __init__(self) -> None:
        self.calls: set[tuple[int, int]] = set()
        self.threads: set[int] = set()
        self.processes: set[int] = set()

    def __call__(self, notification: Notification) -> int | None:
        self.calls.add((notification.arch, notification.nr))
        if notification.pid not in self.threads:
            self.threads.add(notification.pid)
            self.processes.add(thread_group(notification.pid))
        return None


def record(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    on_stragglers: Callable[[], None] | None = None,
) -> Recorded:
    """Run ``argv`` to the end of its last process, letting every call through and noting it."""
    recorder = _Recorder()
    program = FilterProgram(filters.notify_everything())
    exit = supervising.run(argv, program, recorder, env=env, on_stragglers=on_stragglers)
    return Recorded(frozenset(recorder.calls), len(recorder.threads), len(recorder.processes), exit)
