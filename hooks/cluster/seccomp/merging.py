"""Resolving ``baseProfileName`` chains and unioning a profile with its bases.

The merged profile keeps the child's ``defaultAction``; syscalls are unioned,
and when a syscall appears unconditionally in both with different actions the
less restrictive action wins (the child builds *on* its base, it never takes
away what the base needs to start the container). Rules with argument
conditions are kept as they are, after de-duplication.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from hooks.api.problems import ProfileProblem
from hooks.api.seccompprofile import Action, SeccompProfile, SeccompProfileSpec, Syscall

MAX_DEPTH = 10
T = TypeVar("T")

# From least to most restrictive; the merge keeps the earliest.
PERMISSIVENESS = (
    Action.ALLOW,
    Action.LOG,
    Action.NOTIFY,
    Action.TRACE,
    Action.ERRNO,
    Action.TRAP,
    Action.KILL_THREAD,
    Action.KILL,
    Action.KILL_PROCESS,
)


def base_chain(
    profile: SeccompProfile, siblings: Mapping[str, SeccompProfile]
) -> list[SeccompProfile]:
    """The bases of ``profile``, nearest first, looked up by name among ``siblings``."""
    chain: list[SeccompProfile] = []
    seen = [profile.name]
    current = profile
    while current.spec.baseProfileName:
        base_name = current.spec.baseProfileName
        if base_name in seen:
            loop = " -> ".join([*seen, base_name])
            raise ProfileProblem(
                "BaseProfileCycle", f"spec.baseProfileName: base profiles form a cycle: {loop}"
            )
        if len(chain) == MAX_DEPTH:
            raise ProfileProblem(
                "BaseProfileTooDeep",
                f"spec.baseProfileName: more than {MAX_DEPTH} levels of base profiles "
                f"({' -> '.join(seen)} -> ...)",
            )
        base = siblings.get(base_name)
        if base is None:
            via = f" (base of {current.name!r})" if current is not profile else ""
            raise ProfileProblem(
                "BaseProfileNotFound",
                f"spec.baseProfileName: SeccompProfile {base_name!r}{via} not found in "
                f"namespace {profile.namespace!r}",
            )
        chain.append(base)
        seen.append(base_name)
        current = base
    return chain


def merge(spec: SeccompProfileSpec, bases: list[SeccompProfileSpec]) -> SeccompProfileSpec:
    """``spec`` unioned with ``bases`` (nearest first)."""
    if not bases:
        return spec
    layers = [spec, *bases]
    unconditional: dict[str, Action] = {}
    errno_ret: dict[str, int | None] = {}
    conditional: dict[tuple[object, ...], Syscall] = {}  # by content, in order: no quadratic search
    for layer in layers:
        for rule in layer.syscalls or []:
            if rule.args:
                conditional.setdefault(_identity(rule), rule)
                continue
            for name in rule.names:
                known = unconditional.get(name)
                if known is None or PERMISSIVENESS.index(rule.action) < PERMISSIVENESS.index(known):
                    unconditional[name] = rule.action
                    errno_ret[name] = rule.errnoRet
    return spec.model_copy(
        update={
            "baseProfileName": None,
            "architectures": _union(layer.architectures for layer in layers),
            "flags": _union(layer.flags for layer in layers),
            "listenerPath": next((x.listenerPath for x in layers if x.listenerPath), None),
            "listenerMetadata": next(
                (x.listenerMetadata for x in layers if x.listenerMetadata), None
            ),
            "syscalls": _group(unconditional, errno_ret) + list(conditional.values()) or None,
        }
    )


def _identity(rule: Syscall) -> tuple[object, ...]:
    """What makes two rules equal, as a key (every field of the rule and of its arguments)."""
    args = tuple((arg.index, arg.value, arg.valueTwo, arg.op) for arg in rule.args or [])
    return (tuple(rule.names), rule.action, rule.errnoRet, args)


def _union(lists: Iterable[list[T] | None]) -> list[T] | None:
    out: list[T] = []
    for items in lists:
        for item in items or []:
            if item not in out:
                out.append(item)
    return out or None


def _group(actions: dict[str, Action], errno_ret: dict[str, int | None]) -> list[Syscall]:
    """One rule per (action, errnoRet), names sorted, rules in order of permissiveness."""
    groups: dict[tuple[Action, int | None], list[str]] = {}
    for name in sorted(actions):
        groups.setdefault((actions[name], errno_ret[name]), []).append(name)
    ordered = sorted(groups, key=lambda key: (PERMISSIVENESS.index(key[0]), key[1] or 0))
    return [Syscall(names=groups[key], action=key[0], errnoRet=key[1]) for key in ordered]
