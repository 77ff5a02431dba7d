"""Merge the partial profiles of a ProfileRecording with ``mergeStrategy: containers``.

With that strategy every recorded replica of a workload yields a partial
profile per container (labelled ``spo.x-k8s.io/partial``, never installed; see
:mod:`nodesync.enricher.recordingagent`). Once the recording is being deleted they are
merged into one profile per container, ``<recording>-<container>``, labelled
with the recording and the container and not partial, ``disabled`` when the
recording says ``disableProfileAfterRecording``; then the partials are deleted.

- SeccompProfile: the union of the syscall names of the partials' ``SCMP_ACT_ALLOW``
  rules, allowed on the union of their architectures; the default action is
  the partials' own when they agree, ``SCMP_ACT_ERRNO`` otherwise. Rules with
  any other action are left out.
- SelinuxProfile: inherits the system policy ``container`` and allows the union
  of the partials' ``allow`` maps, put again through the SelinuxProfile checks
  (:func:`nodesync.enricher.recordedprofiles.checked_allow`), so the merged profile is one
  the controller installs.

When to merge: a partial profile that comes after the merge would be lost to
it, and a recording may be deleted while its replicas still run. The
ProfileRecording controller (:mod:`hooks.cluster.recording.controller`) knows when every
recorded pod has finished and been collected; it then answers finalize with
the Ready reason ``WaitingForMerge``, and only a recording that says so is
merged (:func:`waiting_for_merge`). :func:`merge_loop` waits one more round
after first seeing it, for the profiles of the pods that went just before.

Every node's recorder runs the merge, so it must not matter which one does:
the merged profile is a function of the partials listed, sorted, and creating
it is the only write before the partials are deleted.

- Created: the partials merged into it are deleted (already gone is fine).
- ``AlreadyExists`` (409): another node created it from the same partials, or
  the name is taken. Nothing is deleted this round; the next one lists it.
- Listed already (a merged profile of that name, not partial): only the
  partials whose rules it covers are deleted. A partial with rules it lacks
  (one written after the merge) is kept, and logged: its rules are not lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hooks.api.base import Object
from hooks.api.profilerecording import (
    PROFILE_PARTIAL_LABEL,
    PROFILE_TO_CONTAINER_LABEL,
    PROFILE_TO_RECORDING_LABEL,
    WAITING_FOR_MERGE,
    MergeStrategy,
)
from hooks.api.registry import RECORDED_KINDS
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.api.selinuxprofile import SelinuxProfileSpec
from nodesync.enricher.recordedprofiles import (
    ALLOW,
    DEFAULT_ACTION,
    SELINUX_KIND,
    Allow,
    checked_allow,
    profile_object,
    seccomp_spec,
    selinux_name_problem,
    selinux_spec,
)
from nodesync.enricher.recordingagent import disabled_by
from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.logs import about

log = logging.getLogger(__name__)

PLURALS: Final = {kind.kind: kind.plural for kind in RECORDED_KINDS}
READY: Final = "Ready"
ALREADY_EXISTS: Final = 409
NOT_FOUND: Final = 404

ListProfiles = Callable[[str, str, str], list[Object]]
Create = Callable[[Object], object]
Delete = Callable[[str, str, str], None]
Rule = tuple[str, str, str]  # SELinux (type, class, permission)


@dataclass(frozen=True, slots=True)
class ContainerMerge:
    """What merging one container's partial profiles comes to.

    ``merged`` is the profile to create (unless ``existing``: one of that name
    is listed already); ``delete`` the partials to delete once it exists, and
    ``kept`` those kept because the existing merged profile lacks their rules.
    """

    container: str
    merged: Object
    delete: tuple[str, ...]
    existing: bool = False
    kept: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    kept_because: str = ""

    @property
    def name(self) -> str:
        return str(self.merged["metadata"]["name"])


@dataclass(slots=True)
class MergeResult:
    """What :func:`merge_recording` did (profile names)."""

    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def recording_key(recording: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = _meta(recording)
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), str(meta.get("uid") or "")


def being_merged(recording: Mapping[str, Any]) -> bool:
    """Whether ``recording`` is being deleted, merges per container, and records a kind that
    merges."""
    spec = _spec(recording)
    return (
        bool(_meta(recording).get("deletionTimestamp"))
        and spec.get("mergeStrategy") == MergeStrategy.CONTAINERS.value
        and spec.get("kind") in PLURALS
    )


def waiting_for_merge(recording: Mapping[str, Any]) -> bool:
    """Whether ``recording`` is being merged and its controller says every recorded pod was
    collected."""
    if not being_merged(recording):
        return False
    conditions = (recording.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, dict) and c.get("type") == READY and c.get("reason") == WAITING_FOR_MERGE
        for c in conditions
    )


def _labels(profile: Mapping[str, Any]) -> Mapping[str, Any]:
    return _meta(profile).get("labels") or {}


def _is_partial(profile: Mapping[str, Any]) -> bool:
    return PROFILE_PARTIAL_LABEL in _labels(profile)


def _allowed_names(profile: Mapping[str, Any]) -> set[str]:
    return {
        str(name)
        for rule in _spec(profile).get("syscalls") or []
        if isinstance(rule, dict) and rule.get("action") == ALLOW
        for name in rule.get("names") or []
    }


def _architectures(profile: Mapping[str, Any]) -> set[str]:
    return {str(arch) for arch in _spec(profile).get("architectures") or []}


def _selinux_rules(profile: Mapping[str, Any], checked: bool = True) -> set[Rule]:
    raw = _spec(profile).get("allow") or {}
    allow: Mapping[str, Mapping[str, Iterable[str]]] = (
        {str(t): {str(c): [str(p) for p in ps] for c, ps in cs.items()} for t, cs in raw.items()}
        if isinstance(raw, dict)
        else {}
    )
    if checked:
        allow, _ = checked_allow(allow)
    return {
        (t, c, p) for t, classes in allow.items() for c, perms in classes.items() for p in perms
    }


def _allow_of(rules: Iterable[Rule]) -> Allow:
    allow: Allow = {}
    for target, cls, perm in sorted(rules):
        allow.setdefault(target, {}).setdefault(cls, []).append(perm)
    return allow


def _merged_seccomp(
    partials: list[Object], disabled: bool
) -> tuple[SeccompProfileSpec, tuple[str, ...]]:
    actions = {str(_spec(p).get("defaultAction") or "") for p in partials}
    warnings: list[str] = []
    action = next(iter(actions)) if len(actions) == 1 and "" not in actions else DEFAULT_ACTION
    if len(actions) > 1:
        warnings.append(
            f"the partial profiles disagree on defaultAction ({', '.join(sorted(actions))}): "
            f"the merged profile uses {DEFAULT_ACTION}"
        )
    names: set[str] = set()
    arches: set[str] = set()
    for partial in partials:
        names |= _allowed_names(partial)
        arches |= _architectures(partial)
        others = sorted(
            {
                str(rule.get("action"))
                for rule in _spec(partial).get("syscalls") or []
                if isinstance(rule, dict) and rule.get("action") != ALLOW
            }
        )
        if others:
            warnings.append(
                f"rules of {_meta(partial).get('name')} with action {', '.join(others)} are "
                "not merged"
            )
    return seccomp_spec(names, arches, disabled, action), tuple(warnings)


def _merged_selinux(
    partials: list[Object], disabled: bool
) -> tuple[SelinuxProfileSpec, tuple[str, ...]]:
    rules: set[Rule] = set()
    left_out: set[str] = set()
    for partial in partials:
        rules |= _selinux_rules(partial, checked=False)
    allow, reasons = checked_allow(_allow_of(rules))
    left_out.update(reasons)
    return selinux_spec(allow, disabled), tuple(sorted(left_out))


def _covered(kind: str, partial: Object, existing: Object) -> bool:
    """Whether every rule of ``partial`` is in ``existing``, the merged profile already there."""
    if kind == SELINUX_KIND:
        return _selinux_rules(partial) <= _selinux_rules(existing, checked=False)
    return _allowed_names(partial) <= _allowed_names(existing) and _architectures(
        partial
    ) <= _architectures(existing)


def merge_plan(
    recording: Mapping[str, Any], profiles: Iterable[Mapping[str, Any]]
) -> list[ContainerMerge]:
    """One merge per container of the partial profiles of ``recording`` among ``profiles``, sorted.

    ``profiles`` are those of the recording's kind labelled with it (the
    merged ones too, if any). Nothing for a recording that is not
    :func:`being_merged`. The same partials always give the same merged profile.
    """
    if not being_merged(recording):
        return []
    meta = _meta(recording)
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    kind = str(_spec(recording).get("kind"))
    disabled = disabled_by(recording)
    partials: dict[str, list[Object]] = {}
    others: dict[str, Object] = {}
    for profile in profiles:
        labels = _labels(profile)
        if (
            labels.get(PROFILE_TO_RECORDING_LABEL) != name
            or str(_meta(profile).get("namespace") or namespace) != namespace
        ):
            continue
        if _is_partial(profile):
            container = str(labels.get(PROFILE_TO_CONTAINER_LABEL) or "")
            if container:
                partials.setdefault(container, []).append(dict(profile))
        else:
            others[str(_meta(profile).get("name") or "")] = dict(profile)
    plan: list[ContainerMerge] = []
    for container in sorted(partials):
        group = sorted(partials[container], key=lambda p: str(_meta(p).get("name") or ""))
        names = tuple(str(_meta(p).get("name") or "") for p in group)
        merged_name = f"{name}-{container}"
        spec: SeccompProfileSpec | SelinuxProfileSpec
        if kind == SELINUX_KIND:
            spec, warnings = _merged_selinux(group, disabled)
            problem = selinux_name_problem(merged_name, namespace)
            warnings += (problem,) if problem else ()
        else:
            spec, warnings = _merged_seccomp(group, disabled)
        merged = profile_object(
            kind, merged_name, namespace, spec, recording=name, container=container
        )
        existing = others.get(merged_name)
        if existing is None:
            plan.append(ContainerMerge(container, merged, names, warnings=warnings))
            continue
        owner = str(_labels(existing).get(PROFILE_TO_CONTAINER_LABEL) or "")
        if owner != container:
            because = f"its name is taken by the recorded profile of container {owner!r}"
            plan.append(ContainerMerge(container, merged, (), True, names, warnings, because))
            continue
        covered = tuple(n for n, p in zip(names, group, strict=True) if _covered(kind, p, existing))
        kept = tuple(n for n in names if n not in covered)
        because = "it lacks their rules (they were written after the merge)"
        plan.append(ContainerMerge(container, merged, covered, True, kept, warnings, because))
    return plan


def merged_profiles(
    recording: Mapping[str, Any], profiles: Iterable[Mapping[str, Any]]
) -> list[Object]:
    """The merged profile of every container of ``recording`` that has partial profiles, sorted."""
    return [item.merged for item in merge_plan(recording, profiles)]


def merge_recording(
    recording: Mapping[str, Any],
    list_profiles: ListProfiles,
    create: Create,
    delete: Delete,
) -> MergeResult:
    """Merge the partial profiles of ``recording`` if it is :func:`waiting_for_merge`.

    ``list_profiles(plural, namespace, selector)``, ``create(body)`` and
    ``delete(plural, namespace, name)`` are the cluster's. A failed list
    raises; a failed create or delete is logged, in the result, and tried again
    by the next call.
    """
    result = MergeResult()
    if not waiting_for_merge(recording):
        return result
    namespace, name, _ = recording_key(recording)
    plural = PLURALS[str(_spec(recording).get("kind"))]
    profiles = list_profiles(plural, namespace, f"{PROFILE_TO_RECORDING_LABEL}={name}")
    for item in merge_plan(recording, profiles):
        where = about(namespace, item.name)
        for warning in item.warnings:
            log.warning("merged profile %s: %s", item.name, warning, extra=where)
        for partial in item.kept:
            log.error(
                "the partial profile %s is kept, not merged into %s: %s",
                partial,
                item.name,
                item.kept_because,
                extra=where,
            )
            result.kept.append(partial)
        if not item.existing and not _created(item, create, result, where):
            result.kept.extend(item.delete)
            continue
        for partial in item.delete:
            _delete(plural, namespace, partial, delete, result)
    return result


def _created(
    item: ContainerMerge, create: Create, result: MergeResult, where: dict[str, object]
) -> bool:
    """Create the merged profile; whether its partials may be deleted now."""
    try:
        create(item.merged)
    except ApiError as error:
        if error.status == ALREADY_EXISTS:
            log.warning(
                "the merged profile %s already exists (another node merged it, or the name is "
                "taken): its partial profiles are looked at again next round",
                item.name,
                extra=where,
            )
            return False
        return _failed(f"creating the merged profile {item.name} failed: {error}", result, where)
    except Exception as error:  # the caller's client: reported, tried again next round
        return _failed(f"creating the merged profile {item.name} failed: {error}", result, where)
    log.info(
        "merged %d partial profiles of container %s into %s",
        len(item.delete),
        item.container,
        item.name,
        extra=where,
    )
    result.created.append(item.name)
    return True


def _failed(message: str, result: MergeResult, where: dict[str, object]) -> bool:
    log.error("%s", message, extra=where)
    result.errors.append(message)
    return False


def _delete(plural: str, namespace: str, name: str, delete: Delete, result: MergeResult) -> None:
    try:
        delete(plural, namespace, name)
    except ApiError as error:
        if error.status != NOT_FOUND:
            _failed(
                f"deleting the partial profile {name} failed: {error}",
                result,
                about(namespace, name),
            )
            return
    except Exception as error:  # the caller's client: reported, tried again next round
        _failed(
            f"deleting the partial profile {name} failed: {error}", result, about(namespace, name)
        )
        return
    result.deleted.append(name)


def merge_loop(  # noqa: PLR0917 - the positional order the log enricher calls it with
    list_recordings: Callable[[], list[Object]],
    list_profiles: ListProfiles,
    create: Create,
    delete: Delete,
    stop: threading.Event,
    interval: float,
) -> None:
    """Every ``interval`` seconds, merge the recordings :func:`waiting_for_merge`.

    A recording is merged from the second round that sees it waiting on, so
    that the profiles of pods that went just before its controller said so
    have been written. A failed list or merge is logged and tried again.
    """
    seen: set[tuple[str, str, str]] = set()
    while not stop.is_set():
        try:
            recordings = list_recordings()
        except Exception as error:  # the cluster client: log, try again next round
            log.warning("listing the profile recordings failed: %s", error, extra=about("", ""))
        else:
            waiting = {recording_key(r): r for r in recordings if waiting_for_merge(r)}
            for key in sorted(waiting):
                if key not in seen:
                    continue
                try:
                    merge_recording(waiting[key], list_profiles, create, delete)
                except Exception as error:  # the cluster client: log, try again next round
                    log.warning(
                        "merging the recorded profiles failed: %s",
                        error,
                        extra=about(key[0], key[1]),
                    )
            seen = set(waiting)
        stop.wait(interval)
