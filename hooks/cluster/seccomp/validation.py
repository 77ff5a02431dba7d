"""Checks the CRD schema cannot express, each answered with a message naming the field."""

from __future__ import annotations

from collections.abc import Sequence

from hooks.api import syscalls
from hooks.api.configmaps import MAX_CONFIGMAP_BYTES
from hooks.api.objectshapes import shown
from hooks.api.problems import ProfileProblem
from hooks.api.seccompprofile import Action, SeccompProfile, SeccompProfileSpec

INVALID = "InvalidSeccompProfile"
TOO_LARGE = "ProfileTooLarge"
ERRNO_ACTIONS = (Action.ERRNO, Action.TRACE)  # the OCI runtime spec allows errnoRet on these only
MAX_NAME = 245  # the ConfigMap is named "seccomp-<name>", at most 253 characters
# What the kernel keeps of errnoRet. A filter returns 16 bits of data (SECCOMP_RET_DATA); for
# SECCOMP_RET_ERRNO the kernel then caps them at MAX_ERRNO (4095), so a larger errno is not what
# the process gets; runc hands the value to libseccomp as a signed 16-bit number, so a tracer's
# message above 32767 comes out negative. Past these a value is not kept: it is an error.
MAX_ERRNO_RET = {Action.ERRNO: 4095, Action.TRACE: 32767}
# sun_path of a UNIX socket address holds 108 bytes, the terminating NUL included.
MAX_LISTENER_PATH = 107


def check_name(name: str) -> None:
    if len(name) > MAX_NAME:
        raise ProfileProblem(
            INVALID, f"metadata.name: at most {MAX_NAME} characters, got {len(name)}"
        )


def check_spec(spec: SeccompProfileSpec) -> list[str]:
    """Raise ProfileProblem for the first thing wrong with ``spec`` itself (bases not included);
    return the warnings: names the profile's architectures do not have but another one does.

    Such a name is left to the runtime: libseccomp resolves it to a pseudo number there and
    leaves it out of that architecture's filter (runc on x86_64 with ``vm86``, for example).
    A name no architecture has is a mistake (a typo), and an error.
    """
    # A profile without architectures runs on whatever the node is, which the
    # hook cannot know: a name is accepted when some architecture has it.
    everywhere = list(syscalls.architectures())
    arches = [arch.value for arch in spec.architectures or []] or everywhere
    warnings: list[str] = []
    unconditional: dict[str, str] = {}
    notify = spec.defaultAction is Action.NOTIFY
    for index, rule in enumerate(spec.syscalls or []):
        field = f"spec.syscalls[{index}]"
        missing = syscalls.unknown(rule.names, arches)
        unknown = syscalls.unknown(missing, everywhere) if spec.architectures else missing
        if unknown:
            raise ProfileProblem(
                INVALID,
                f"{field}.names: unknown syscalls for any architecture: {', '.join(unknown)}",
            )
        if missing:
            warnings.append(not_on_architectures(field, spec, missing))
        if rule.errnoRet is not None and rule.action not in ERRNO_ACTIONS:
            raise ProfileProblem(
                INVALID,
                f"{field}.errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not "
                f"{rule.action.value}",
            )
        if rule.errnoRet is not None and rule.errnoRet > MAX_ERRNO_RET[rule.action]:
            raise ProfileProblem(
                INVALID,
                f"{field}.errnoRet: at most {MAX_ERRNO_RET[rule.action]} with "
                f"{rule.action.value}, got {rule.errnoRet}",
            )
        notify = notify or rule.action is Action.NOTIFY
        if rule.args:
            continue
        for name in rule.names:
            if name in unconditional:
                raise ProfileProblem(
                    INVALID,
                    f"{field}.names: syscall {name!r} is already listed in {unconditional[name]}",
                )
            unconditional[name] = field
    if notify and not spec.listenerPath:
        raise ProfileProblem(INVALID, "spec.listenerPath: required when SCMP_ACT_NOTIFY is used")
    if spec.listenerPath is not None:
        check_listener_path(spec.listenerPath)
    return warnings


def not_on_architectures(field: str, spec: SeccompProfileSpec, names: Sequence[str]) -> str:
    """The warning for ``names`` of rule ``field``, which other architectures than the
    profile's have."""
    listed = ", ".join(arch.value for arch in spec.architectures or [])
    return (
        f"{field}.names: no such syscalls on {listed} (other architectures have them; the "
        f"runtime leaves them out of the filter there): {', '.join(names)}"
    )


def check_listener_path(path: str) -> None:
    """An absolute, clean path of a UNIX socket: no NUL, no ``.`` or ``..``, no empty component."""
    problem = None
    if "\0" in path:
        problem = "must not contain NUL"
    elif not path.startswith("/"):
        problem = "must be an absolute path"
    elif path != "/" and any(part in ("", ".", "..") for part in path[1:].split("/")):
        problem = "must be a clean path (no '.', '..', '//' or trailing '/')"
    elif len(path.encode()) > MAX_LISTENER_PATH:
        problem = (
            f"at most {MAX_LISTENER_PATH} bytes (a UNIX socket's path), got {len(path.encode())}"
        )
    elif path == "/":
        problem = "must name a socket, not '/'"
    if problem:
        raise ProfileProblem(INVALID, f"spec.listenerPath: {shown(path)} {problem}")


def check_size(encoded: str) -> None:
    size = len(encoded.encode())
    if size > MAX_CONFIGMAP_BYTES:
        raise ProfileProblem(
            TOO_LARGE,
            f"spec: the profile is {size} bytes, more than a ConfigMap can hold "
            f"({MAX_CONFIGMAP_BYTES})",
        )


def check_bases(chain: Sequence[SeccompProfile]) -> None:
    """Every base profile of ``chain`` is valid itself, or ``InvalidBaseProfile`` names it."""
    for base in chain:
        try:
            check_spec(base.spec)
        except ProfileProblem as problem:
            raise ProfileProblem(
                "InvalidBaseProfile", f"base profile {base.name!r}: {problem.message}"
            ) from problem
