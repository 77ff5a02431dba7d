"""The BPF programs the command runs under: "ask us about everything", or a profile.

A profile is compiled with libseccomp (``libseccomp.so.2``, through ctypes), the
way runc compiles the ``linux.seccomp`` of a container: the same library, the
same translation (an unknown syscall name is skipped; a rule whose action is
the default action is skipped; argument conditions on distinct indexes are
one rule, several conditions on one index are one rule each; ``SCMP_ACT_ERRNO``
without ``errnoRet`` is ``EPERM``). One thing differs: every action that
*refuses* a call with an errno (``SCMP_ACT_ERRNO``, and ``SCMP_ACT_TRACE``,
which fails with ``ENOSYS`` when no tracer is attached, as in a container)
becomes ``SCMP_ACT_NOTIFY``, and :meth:`CompiledProfile.errno_for` gives the
errno the profile would have returned, so that the supervisor fails the call
exactly as the profile would, and knows that it did. ``SCMP_ACT_KILL*`` and
``SCMP_ACT_TRAP`` stay what they are (the command dies of ``SIGSYS``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from hooks.api import syscalls
from hooks.api.seccompprofile import Action, Arg, Operator, SeccompProfileSpec
from nodesync.tracing import kernel
from nodesync.tracing.kernel import Notification, Unsupported

INSTRUCTION: Final = struct.Struct("=HBBI")  # struct sock_filter
BPF_RET_K: Final = 0x06

SCMP_ACT_KILL_PROCESS: Final = 0x80000000
SCMP_ACT_KILL_THREAD: Final = 0x00000000
SCMP_ACT_TRAP: Final = 0x00030000
SCMP_ACT_NOTIFY: Final = 0x7FC00000
SCMP_ACT_LOG: Final = 0x7FFC0000
SCMP_ACT_ALLOW: Final = 0x7FFF0000

_NATIVE_ACTIONS: Final = {
    Action.KILL: SCMP_ACT_KILL_THREAD,
    Action.KILL_THREAD: SCMP_ACT_KILL_THREAD,
    Action.KILL_PROCESS: SCMP_ACT_KILL_PROCESS,
    Action.TRAP: SCMP_ACT_TRAP,
    Action.LOG: SCMP_ACT_LOG,
    Action.ALLOW: SCMP_ACT_ALLOW,
}
_REFUSING: Final = (Action.ERRNO, Action.TRACE)

# enum scmp_compare
_OPERATORS: Final = {
    Operator.NE: 1,
    Operator.LT: 2,
    Operator.LE: 3,
    Operator.EQ: 4,
    Operator.GE: 5,
    Operator.GT: 6,
    Operator.MASKED_EQ: 7,
}
_FLAGS: Final = {
    "SECCOMP_FILTER_FLAG_LOG": kernel.FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": kernel.FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": kernel.FILTER_FLAG_WAIT_KILLABLE_RECV,
    # TSYNC: the command starts with one thread, there is nothing to synchronise
}
NR_SCMP_ERROR: Final = -1


class ProfileError(ValueError):
    """A profile that cannot be run (libseccomp refused it, or it needs a seccomp agent)."""


def notify_everything() -> bytes:
    """A program that hands every syscall of every architecture to the listener."""
    return INSTRUCTION.pack(BPF_RET_K, 0, 0, kernel.RET_USER_NOTIF)


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        library = ctypes.CDLL(name, use_errno=True)
    except OSError as error:
        raise Unsupported(
            f"libseccomp is not installed ({error}); Debian: apt-get install libseccomp2"
        ) from None
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = (ctypes.c_uint32,)
    library.seccomp_release.argtypes = (ctypes.c_void_p,)
    library.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    library.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    library.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
    library.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    library.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    library.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    return library


def libseccomp_version() -> str:
    library = _library()
    library.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
    major, minor, micro = library.seccomp_version().contents
    return f"{major}.{minor}.{micro}"


def _errno_of(action: Action, errno_ret: int | None) -> int:
    if action is Action.TRACE:
        return errno.ENOSYS  # no tracer attached: what a container gets
    return errno.EPERM if errno_ret is None else errno_ret


def _matches(arg: Arg, values: Sequence[int]) -> bool:
    value = values[arg.index]
    expected = arg.value or 0
    if arg.op is Operator.MASKED_EQ:
        return value & expected == (arg.valueTwo or 0)
    return {
        Operator.NE: value != expected,
        Operator.LT: value < expected,
        Operator.LE: value <= expected,
        Operator.EQ: value == expected,
        Operator.GE: value >= expected,
        Operator.GT: value > expected,
    }[arg.op]


@dataclass(frozen=True, slots=True)
class _Refusal:
    args: tuple[Arg, ...]
    errno: int

    def applies(self, values: Sequence[int]) -> bool:
        if not self.args:
            return True
        indexes = [arg.index for arg in self.args]
        if len(set(indexes)) < len(indexes):  # runc: one rule per condition
            return any(_matches(arg, values) for arg in self.args)
        return all(_matches(arg, values) for arg in self.args)


@dataclass
class CompiledProfile:
    """A profile as a BPF program whose refusals come to the listener, and how to answer them."""

    program: bytes
    flags: int
    default_errno: int
    refusals: dict[str, list[_Refusal]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # names libseccomp does not know (runc skips them too)

    def errno_for(self, notification: Notification) -> int:
        """The errno the profile returns for this call (it refuses it: that is why it came)."""
        name = syscalls.name_of(notification.arch, notification.nr)
        rules = self.refusals.get(name or "", [])
        for rule in sorted(rules, key=lambda rule: not rule.args):
            if rule.applies(notification.args):
                return rule.errno
        return self.default_errno


def _native_or_notify(action: Action) -> int:
    if action in _REFUSING:
        return SCMP_ACT_NOTIFY
    if action is Action.NOTIFY:
        raise ProfileError(
            "the profile hands syscalls to a seccomp agent (SCMP_ACT_NOTIFY): spo run cannot "
            "play that agent"
        )
    return _NATIVE_ACTIONS[action]


def compile_profile(spec: SeccompProfileSpec, default_errno: int | None = None) -> CompiledProfile:
    """``spec`` (already merged with its bases) as a program for :mod:`.supervising`."""
    library = _library()
    default = _native_or_notify(spec.defaultAction)
    context = library.seccomp_init(default)
    if not context:
        raise ProfileError(f"libseccomp refused the default action {spec.defaultAction.value}")
    try:
        for arch in spec.architectures or []:
            if arch.value == syscalls.NATIVE:
                continue
            token = library.seccomp_arch_resolve_name(
                arch.value.removeprefix("SCMP_ARCH_").lower().encode()
            )
            if token == 0:
                raise ProfileError(f"libseccomp does not know the architecture {arch.value}")
            result = library.seccomp_arch_add(context, token)
            if result not in (0, -errno.EEXIST):
                raise ProfileError(f"libseccomp cannot add {arch.value}: {os.strerror(-result)}")
        compiled = CompiledProfile(
            b"",
            sum({_FLAGS.get(flag.value, 0) for flag in spec.flags or []}),
            _errno_of(spec.defaultAction, default_errno),
        )
        skipped: list[str] = []
        for rule in spec.syscalls or []:
            action = _native_or_notify(rule.action)
            if rule.action in _REFUSING:
                refusal = _Refusal(tuple(rule.args or ()), _errno_of(rule.action, rule.errnoRet))
                for name in rule.names:
                    compiled.refusals.setdefault(name, []).append(refusal)
            if action == default:
                continue
            for name in rule.names:
                number = library.seccomp_syscall_resolve_name(name.encode())
                if number == NR_SCMP_ERROR:
                    skipped.append(name)
                    continue
                _add_rule(library, context, action, number, name=name, args=rule.args or [])
        compiled.skipped = tuple(dict.fromkeys(skipped))
        compiled.program = _export(library, context)
        return compiled
    finally:
        library.seccomp_release(context)


def _add_rule(
    library: ctypes.CDLL, context: int, action: int, number: int, *, name: str, args: list[Arg]
) -> None:
    indexes = [arg.index for arg in args]
    groups = [[arg] for arg in args] if len(set(indexes)) < len(indexes) else [args]
    for group in groups:
        conditions = (_ArgCmp * max(len(group), 1))(
            *(
                _ArgCmp(arg.index, _OPERATORS[arg.op], arg.value or 0, arg.valueTwo or 0)
                for arg in group
            )
        )
        result = library.seccomp_rule_add_array(context, action, number, len(group), conditions)
        if result != 0:
            raise ProfileError(f"libseccomp refused the rule for {name}: {os.strerror(-result)}")


def _export(library: ctypes.CDLL, context: int) -> bytes:
    memory = os.memfd_create("spo-seccomp-filter", os.MFD_CLOEXEC)
    try:
        result = library.seccomp_export_bpf(context, memory)
        if result != 0:
            raise ProfileError(f"libseccomp could not export the filter: {os.strerror(-result)}")
        size = os.lseek(memory, 0, os.SEEK_CUR)
        return os.pread(memory, size, 0)
    finally:
        os.close(memory)
