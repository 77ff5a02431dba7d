"""Checks the CRD schema cannot express, each answered with a message naming the field."""

from __future__ import annotations

from hooks.api import syscalls
from hooks.api.configmaps import MAX_CONFIGMAP_BYTES
from hooks.api.problems import ProfileProblem
from hooks.api.seccompprofile import Action, SeccompProfileSpec

INVALID = "InvalidSeccompProfile"
TOO_LARGE = "ProfileTooLarge"
ERRNO_ACTIONS = (Action.ERRNO, Action.TRACE)  # the OCI runtime spec allows errnoRet on these only
MAX_NAME = 245  # the ConfigMap is named "seccomp-<name>", at most 253 characters


def check_name(name: str) -> None:
    if len(name) > MAX_NAME:
        raise ProfileProblem(
            INVALID, f"metadata.name: at most {MAX_NAME} characters, got {len(name)}"
        )


def check_spec(spec: SeccompProfileSpec) -> None:
    """Raise ProfileProblem for the first thing wrong with ``spec`` itself (bases not included)."""
    # A profile without architectures runs on whatever the node is, which the
    # hook cannot know: a name is accepted when some architecture has it.
    arches = [arch.value for arch in spec.architectures or []] or list(syscalls.architectures())
    unconditional: dict[str, str] = {}
    notify = spec.defaultAction is Action.NOTIFY
    for index, rule in enumerate(spec.syscalls or []):
        field = f"spec.syscalls[{index}]"
        unknown = syscalls.unknown(rule.names, arches)
        if unknown:
            where = (
                ", ".join(arch.value for arch in spec.architectures)
                if spec.architectures
                else "any architecture"
            )
            raise ProfileProblem(
                INVALID, f"{field}.names: unknown syscalls for {where}: {', '.join(unknown)}"
            )
        if rule.errnoRet is not None and rule.action not in ERRNO_ACTIONS:
            raise ProfileProblem(
                INVALID,
                f"{field}.errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not "
                f"{rule.action.value}",
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


def check_size(encoded: str) -> None:
    size = len(encoded.encode())
    if size > MAX_CONFIGMAP_BYTES:
        raise ProfileProblem(
            TOO_LARGE,
            f"spec: the profile is {size} bytes, more than a ConfigMap can hold "
            f"({MAX_CONFIGMAP_BYTES})",
        )
