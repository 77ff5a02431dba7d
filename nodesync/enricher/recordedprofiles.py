"""The recorded profiles as the API's objects: SeccompProfile and SelinuxProfile built from what
the recorder saw."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from hooks.api import selinuxrules as validation
from hooks.api.base import Object, ObjectMeta
from hooks.api.podannotations import SELINUX_RECORDING_TYPE
from hooks.api.problems import ProfileProblem
from hooks.api.profilerecording import (
    PROFILE_PARTIAL_LABEL,
    PROFILE_TO_CONTAINER_LABEL,
    PROFILE_TO_RECORDING_LABEL,
)
from hooks.api.seccompprofile import KIND as SECCOMP
from hooks.api.seccompprofile import Action, Arch, SeccompProfile, SeccompProfileSpec, Syscall
from hooks.api.selinuxprofile import (
    ALLOW_SELF,
    PolicyKind,
    PolicyRef,
    SelinuxProfile,
    SelinuxProfileSpec,
)
from hooks.api.selinuxprofile import KIND as SELINUX
from nodesync.enricher.recorder import RecordedAvcs

API_VERSION: Final = SECCOMP.api_version

Allow = dict[str, dict[str, list[str]]]  # SELinux: type -> class -> permissions


KIND: Final = SECCOMP.kind


SELINUX_API_VERSION: Final = SELINUX.api_version


SELINUX_KIND: Final = SELINUX.kind


DEFAULT_ACTION: Final = "SCMP_ACT_ERRNO"


ALLOW: Final = "SCMP_ACT_ALLOW"


INHERIT_SYSTEM: Final = "container"


PARTIAL_VALUE: Final = "true"


def profile_object(
    kind: str,
    name: str,
    namespace: str,
    spec: SeccompProfileSpec | SelinuxProfileSpec,
    *,
    recording: str,
    container: str,
    partial: bool = False,
) -> Object:
    """A recorded profile of ``kind``, labelled with its recording and container (and partial)."""
    labels = {PROFILE_TO_RECORDING_LABEL: recording, PROFILE_TO_CONTAINER_LABEL: container}
    if partial:
        labels[PROFILE_PARTIAL_LABEL] = PARTIAL_VALUE
    metadata = ObjectMeta(name=name, namespace=namespace, labels=labels)
    profile: SeccompProfile | SelinuxProfile
    if isinstance(spec, SelinuxProfileSpec):
        profile = SelinuxProfile(
            apiVersion=SELINUX_API_VERSION, kind=kind, metadata=metadata, spec=spec
        )
    else:
        profile = SeccompProfile(apiVersion=API_VERSION, kind=kind, metadata=metadata, spec=spec)
    return profile.to_wire()


def seccomp_spec(
    names: Iterable[str],
    architectures: Iterable[str],
    disabled: bool,
    default_action: str = DEFAULT_ACTION,
) -> SeccompProfileSpec:
    """Deny by default, allow ``names`` (sorted, once each) on ``architectures`` (sorted).

    Built unvalidated (``model_construct``): what the recorder saw is written as
    seen, and the API server's schema judges it, as for any other client.
    """
    allowed = Syscall.model_construct(action=Action.ALLOW, names=sorted(set(names)))
    return SeccompProfileSpec.model_construct(
        defaultAction=Action(default_action),
        architectures=[Arch(arch) for arch in sorted(set(architectures))],
        syscalls=[allowed],
        disabled=True if disabled else None,
    )


def selinux_spec(
    allow: Mapping[str, Mapping[str, Iterable[str]]], disabled: bool
) -> SelinuxProfileSpec:
    """Inherit the system policy ``container``; allow ``allow`` (sorted; omitted when empty)."""
    rules = {
        target: {cls: sorted(set(perms)) for cls, perms in sorted(classes.items()) if perms}
        for target, classes in sorted(allow.items())
    }
    rules = {target: classes for target, classes in rules.items() if classes}
    return SelinuxProfileSpec(
        inherit=[PolicyRef(kind=PolicyKind.SYSTEM, name=INHERIT_SYSTEM)],
        allow=rules or None,
        disabled=True if disabled else None,
    )


def checked_allow(
    allow: Mapping[str, Mapping[str, Iterable[str]]],
) -> tuple[Allow, tuple[str, ...]]:
    """The rules of ``allow`` that the SelinuxProfile checks accept, and why the others were left
    out.

    Each type, then each (type, class, permission), is put through
    :func:`hooks.api.selinuxrules.check_allow`, so that what is kept passes
    it as a whole. The reasons are sorted and given once each.
    """
    kept: Allow = {}
    reasons: set[str] = set()
    for target in sorted(allow):
        try:
            validation.check_allow({target: {}})
        except ProfileProblem as problem:
            reasons.add(problem.message)
            continue
        for cls in sorted(allow[target]):
            for perm in sorted(set(allow[target][cls])):
                try:
                    validation.check_allow({target: {cls: [perm]}})
                except ProfileProblem as problem:
                    reasons.add(problem.message)
                    continue
                kept.setdefault(target, {}).setdefault(cls, []).append(perm)
    return kept, tuple(sorted(reasons))


def selinux_allow(recorded: RecordedAvcs | None) -> tuple[Allow, tuple[str, ...]]:
    """The ``spec.allow`` of what a container was denied, and what was left out of it (see module
    doc).

    The recording's own process type and the container's source types are ``@self``.
    """
    if recorded is None:
        return {}, ()
    own = {SELINUX_RECORDING_TYPE, *recorded.source_types}
    merged: dict[str, dict[str, set[str]]] = {}
    for target, classes in recorded.allow.items():
        key = ALLOW_SELF if target in own else target
        for cls, perms in classes.items():
            merged.setdefault(key, {}).setdefault(cls, set()).update(perms)
    return checked_allow(merged)


def selinux_name_problem(name: str, namespace: str) -> str | None:
    """Why the SelinuxProfile controller would refuse a profile called ``name``, None if it would
    not."""
    try:
        validation.check_name(name, namespace)
    except ProfileProblem as problem:
        return (
            f"the SelinuxProfile controller will reject this profile ({problem.message}); "
            "its recorded rules can be copied into a profile with a valid name"
        )
    return None


def rule_count(profile: Mapping[str, Any]) -> int:
    """How many syscalls (SeccompProfile) or permissions (SelinuxProfile) ``profile`` allows."""
    spec = profile.get("spec") or {}
    if profile.get("kind") == SELINUX_KIND:
        return sum(
            len(perms)
            for classes in (spec.get("allow") or {}).values()
            for perms in classes.values()
        )
    return sum(len(rule.get("names") or []) for rule in spec.get("syscalls") or [])
