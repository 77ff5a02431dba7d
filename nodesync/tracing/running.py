"""Run a command under a profile and say which of its calls the profile refused."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hooks.api import syscalls
from nodesync.tracing import supervising
from nodesync.tracing.filters import CompiledProfile
from nodesync.tracing.kernel import FilterProgram, Notification
from nodesync.tracing.recording import thread_group
from nodesync.tracing.supervising import Exit


@dataclass(frozen=True, slots=True)
class Refusal:
    """One call the profile refused: which syscall, to whom, with which errno."""

    syscall: str  # the name, or "arch=0x... syscall=N" when the table has none
    errno: int
    pid: int
    tid: int
    executable: str


@dataclass(frozen=True, slots=True)
class Ran:
    exit: Exit
    refusals: tuple[Refusal, ...]


def executable_of(tid: int) -> str:
    """The file thread ``tid`` runs (its name when the link cannot be read)."""
    try:
        return os.path.basename(os.readlink(f"/proc/{tid}/exe"))
    except OSError:
        pass
    try:
        with open(f"/proc/{tid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def run(
    argv: Sequence[str],
    profile: CompiledProfile,
    *,
    on_refusal: Callable[[Refusal], None] | None = None,
    env: Mapping[str, str] | None = None,
    on_stragglers: Callable[[], None] | None = None,
) -> Ran:
    """Run ``argv`` under ``profile``; how it ended and every call refused, in order."""
    refusals: list[Refusal] = []

    def refuse(notification: Notification) -> int:
        error = profile.errno_for(notification)
        name = syscalls.name_of(notification.arch, notification.nr)
        refusal = Refusal(
            name or f"arch=0x{notification.arch:x} syscall={notification.nr}",
            error,
            thread_group(notification.pid),
            notification.pid,
            executable_of(notification.pid),
        )
        refusals.append(refusal)
        if on_refusal is not None:
            on_refusal(refusal)
        return error

    program = FilterProgram(profile.program, profile.flags)
    exit = supervising.run(argv, program, refuse, env=env, on_stragglers=on_stragglers)
    return Ran(exit, tuple(refusals))
