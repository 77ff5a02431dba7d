"""Turn what the recorder saw into SeccompProfile and SelinuxProfile objects when a recorded pod is done.

The recording webhook marks each recorded container ``<c>`` of a pod with an
annotation ``<prefix><c>: <recording>_<c>_<nonce>_<stamp>``: the prefix
``io.containers.trace-logs/`` asks for a SeccompProfile, ``io.containers.trace-avcs/``
for a SelinuxProfile. When such a pod has phase ``Succeeded`` or is deleted,
each of its marked containers yields one profile of that kind in the pod's
namespace, named ``<recording>-<container>`` (plus ``-<suffix>`` for a pod made
from ``metadata.generateName``: the part of its name after that prefix, so that
the replicas of a workload do not overwrite each other) and labelled with the
recording's and the container's names. It is created ``disabled`` when its
ProfileRecording says ``disableProfileAfterRecording``.

- A SeccompProfile denies by default (``SCMP_ACT_ERRNO``) and allows exactly
  the syscalls recorded, sorted, for this node's architecture. A container
  with no syscall recorded is an error: an empty allow list would break it.
- A SelinuxProfile inherits the system policy ``container`` and allows what
  the AVC records of the container asked for: target type -> class -> sorted
  permissions. The recording's own process type (``selinuxrecording.process``,
  or any source type of the container's records) becomes ``@self``. Every rule
  goes through the operator's own SelinuxProfile checks
  (:func:`hooks.selinux.validation.check_allow`): a type, class or permission
  the SelinuxProfile controller would refuse (a malformed name, or one on the
  deny list such as ``kernel_t``, ``security_t``, class ``security`` or
  permission ``relabelto``) is left out and logged as a warning, so that the
  recorded profile is one the controller installs; the workload may then need
  those rights from elsewhere. A container with no AVC recorded gets a profile
  with no ``allow``: the ``container`` policy was all it needed.

When the ProfileRecording has ``mergeStrategy: containers`` the profile is
partial: labelled ``spo.x-k8s.io/partial: "true"``, never installed, named
``<recording>-<container>-<suffix>`` with the pod's name as the suffix of a pod
not made from ``generateName`` (so that a partial never takes the name of the
merged profile, ``<recording>-<container>``), and without ``disabled`` (the
merged profile carries it). :mod:`nodesync.recording_merge` merges them.

Lost audit records make an incomplete profile that would break the workload
it is meant for: when the loss detector saw any since the pod was created (or
while auditd did not run), no profile is created for its containers and the
outcome is an error that says so (logged, and an Event on the recording).

The decisions (:func:`recorded_targets`, :func:`decide`, :func:`seccomp_profile`,
:func:`selinux_profile`, :func:`selinux_allow`) are pure functions;
:class:`RecordingAgent` is the thin part that keeps the pods it was shown and
creates the profiles through a ``create(obj)`` callable, which posts by the
object's ``kind``.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hooks.api import GROUP
from hooks.api.profilerecording import (
    PROFILE_PARTIAL_LABEL,
    PROFILE_TO_CONTAINER_LABEL,
    PROFILE_TO_RECORDING_LABEL,
    SECCOMP_RECORD_LOGS_ANNOTATION,
    SELINUX_RECORD_LOGS_ANNOTATION,
    MergeStrategy,
)
from hooks.api.selinuxprofile import ALLOW_SELF, PolicyKind
from hooks.problems import ProfileProblem
from hooks.recording.podannotations import SELINUX_RECORDING_TYPE
from hooks.seccomp.syscalls import native_arch
from hooks.selinux import validation
from nodesync.auditlog import AuditRecord
from nodesync.containers import ContainerRef, container_index, pod_key
from nodesync.logs import about
from nodesync.recording import (
    LossDetector,
    RecordedAvcs,
    RecordedSyscalls,
    Recorder,
    RecordsLost,
)

log = logging.getLogger(__name__)

API_VERSION: Final = f"{GROUP}/v1beta1"
KIND: Final = "SeccompProfile"
SELINUX_API_VERSION: Final = f"{GROUP}/v1alpha2"
SELINUX_KIND: Final = "SelinuxProfile"
DEFAULT_ACTION: Final = "SCMP_ACT_ERRNO"
ALLOW: Final = "SCMP_ACT_ALLOW"
INHERIT_SYSTEM: Final = "container"
PARTIAL_VALUE: Final = "true"
_ID_PARTS: Final = 4
_PREFIXES: Final = (
    (SECCOMP_RECORD_LOGS_ANNOTATION, KIND),
    (SELINUX_RECORD_LOGS_ANNOTATION, SELINUX_KIND),
)
_RECORDING_PREFIXES: Final = tuple(prefix for prefix, _ in _PREFIXES)

Json = dict[str, Any]
Allow = dict[str, dict[str, list[str]]]


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """A recorded container of a pod, and the profile its recording makes.

    ``profile`` is the name of the profile; ``replica`` the ``generateName``
    suffix of the pod ("" for a pod named in full).
    """

    ref: ContainerRef
    recording: str
    profile: str
    kind: str = KIND
    replica: str = ""

    @property
    def partial_profile(self) -> str:
        """The name of the target's partial profile: always with a suffix (the pod's name by default)."""
        return f"{self.recording}-{self.ref.container}-{self.replica or self.ref.pod}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one target: create ``profile``, or nothing because of ``error``.

    ``warnings`` say what was recorded but left out of the profile.
    """

    target: Target
    profile: Json | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name of the profile created (or that would have been)."""
        if self.profile is not None:
            return str(self.profile["metadata"]["name"])
        return self.target.profile


def _metadata(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def replica_of(metadata: Mapping[str, Any]) -> str:
    """The part of the pod's name after its ``generateName``, "" for a pod named in full."""
    prefix = str(metadata.get("generateName") or "")
    if not prefix:
        return ""
    pod = str(metadata.get("name") or "")
    return pod[len(prefix) :] if pod.startswith(prefix) else pod


def profile_name(recording: str, container: str, metadata: Mapping[str, Any]) -> str:
    """``<recording>-<container>``, with ``-<suffix>`` for a pod named from ``generateName``."""
    name = f"{recording}-{container}"
    suffix = replica_of(metadata)
    return f"{name}-{suffix}" if suffix else name


def recording_of(value: object) -> str | None:
    """The recording's name in an annotation value ``<recording>_<container>_<nonce>_<stamp>``."""
    if not isinstance(value, str):
        return None
    parts = value.split("_")
    if len(parts) != _ID_PARTS or not parts[0]:
        return None
    return parts[0]


def _kind_of(key: str) -> tuple[str, str] | None:
    """(profile kind, container) of a recording annotation key, None for any other key."""
    for prefix, kind in _PREFIXES:
        if key.startswith(prefix):
            return kind, key[len(prefix) :]
    return None


def recorded_targets(pod: Mapping[str, Any]) -> list[Target]:
    """The containers of ``pod`` recorded from the audit log (seccomp and SELinux), sorted."""
    metadata = _metadata(pod)
    namespace, name = pod_key(pod)
    annotations = metadata.get("annotations") or {}
    replica = replica_of(metadata)
    targets: list[Target] = []
    for key, value in annotations.items():
        found = _kind_of(key)
        if found is None:
            continue
        kind, container = found
        recording = recording_of(value)
        if not container or recording is None:
            log.warning(
                "ignoring the malformed recording annotation %s=%r",
                key,
                value,
                extra=about(namespace, name),
            )
            continue
        targets.append(
            Target(
                ContainerRef(namespace, name, container),
                recording,
                profile_name(recording, container, metadata),
                kind,
                replica,
            )
        )
    return sorted(targets)


def finished(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's recording is over while the pod still exists (phase Succeeded)."""
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def disabled_by(recording: Mapping[str, Any] | None) -> bool:
    """Whether the ProfileRecording object asks for the profiles to be created disabled."""
    if not recording:
        return False
    return (recording.get("spec") or {}).get("disableProfileAfterRecording") is True


def merging_by(recording: Mapping[str, Any] | None) -> bool:
    """Whether the ProfileRecording object merges its profiles per container (partial profiles)."""
    if not recording:
        return False
    return (recording.get("spec") or {}).get("mergeStrategy") == MergeStrategy.CONTAINERS.value


def profile_object(
    kind: str,
    name: str,
    namespace: str,
    spec: Json,
    *,
    recording: str,
    container: str,
    partial: bool = False,
) -> Json:
    """A recorded profile of ``kind``, labelled with its recording and container (and partial)."""
    labels = {PROFILE_TO_RECORDING_LABEL: recording, PROFILE_TO_CONTAINER_LABEL: container}
    if partial:
        labels[PROFILE_PARTIAL_LABEL] = PARTIAL_VALUE
    return {
        "apiVersion": SELINUX_API_VERSION if kind == SELINUX_KIND else API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def seccomp_spec(
    names: Iterable[str],
    architectures: Iterable[str],
    disabled: bool,
    default_action: str = DEFAULT_ACTION,
) -> Json:
    """Deny by default, allow ``names`` (sorted, once each) on ``architectures`` (sorted)."""
    spec: Json = {
        "defaultAction": default_action,
        "architectures": sorted(set(architectures)),
        "syscalls": [{"action": ALLOW, "names": sorted(set(names))}],
    }
    if disabled:
        spec["disabled"] = True
    return spec


def selinux_spec(allow: Mapping[str, Mapping[str, Iterable[str]]], disabled: bool) -> Json:
    """Inherit the system policy ``container``; allow ``allow`` (sorted; omitted when empty)."""
    spec: Json = {"inherit": [{"kind": PolicyKind.SYSTEM.value, "name": INHERIT_SYSTEM}]}
    rules = {
        target: {cls: sorted(set(perms)) for cls, perms in sorted(classes.items()) if perms}
        for target, classes in sorted(allow.items())
    }
    rules = {target: classes for target, classes in rules.items() if classes}
    if rules:
        spec["allow"] = rules
    if disabled:
        spec["disabled"] = True
    return spec


def _target_object(target: Target, spec: Json, partial: bool) -> Json:
    return profile_object(
        target.kind,
        target.partial_profile if partial else target.profile,
        target.ref.namespace,
        spec,
        recording=target.recording,
        container=target.ref.container,
        partial=partial,
    )


def seccomp_profile(
    target: Target, names: Iterable[str], arch: str, disabled: bool, *, partial: bool = False
) -> Json:
    """The SeccompProfile object to create for ``target``, allowing ``names``.

    A partial one never says ``disabled``: it is not installed, the merged one is.
    """
    return _target_object(target, seccomp_spec(names, [arch], disabled and not partial), partial)


def selinux_profile(
    target: Target,
    allow: Mapping[str, Mapping[str, Iterable[str]]],
    disabled: bool,
    *,
    partial: bool = False,
) -> Json:
    """The SelinuxProfile object to create for ``target``, allowing ``allow`` (already checked)."""
    return _target_object(target, selinux_spec(allow, disabled and not partial), partial)


def checked_allow(
    allow: Mapping[str, Mapping[str, Iterable[str]]],
) -> tuple[Allow, tuple[str, ...]]:
    """The rules of ``allow`` that the SelinuxProfile checks accept, and why the others were left out.

    Each type, then each (type, class, permission), is put through
    :func:`hooks.selinux.validation.check_allow`, so that what is kept passes
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
    """The ``spec.allow`` of what a container was denied, and what was left out of it (see module doc).

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
    """Why the SelinuxProfile controller would refuse a profile called ``name``, None if it would not."""
    try:
        validation.check_name(name, namespace)
    except ProfileProblem as problem:
        return (
            f"the SelinuxProfile controller will reject this profile ({problem.message}); "
            "its recorded rules can be copied into a profile with a valid name"
        )
    return None


CLOCK_SKEW: Final = 30.0  # seconds between the API server's clock and this node's, at most


def started(pod: Mapping[str, Any]) -> float:
    """When the pod's recording may have begun (epoch seconds, less ``CLOCK_SKEW``); 0 unknown."""
    stamp = str(_metadata(pod).get("creationTimestamp") or "")
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, moment.timestamp() - CLOCK_SKEW)


def decide(
    pods: Iterable[Mapping[str, Any]],
    recorded: Mapping[ContainerRef, RecordedSyscalls],
    detector: LossDetector,
    *,
    arch: str,
    recordings: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    avcs: Mapping[ContainerRef, RecordedAvcs] | None = None,
) -> list[Decision]:
    """The profiles to create for ``pods``, whose recording is over.

    ``recorded`` is what the recorder saw per container (syscalls), ``avcs``
    its AVC records, ``recordings`` the ProfileRecording objects by
    (namespace, name) when known. When the detector saw records lost since a
    pod was created (:func:`started`), its targets are errors: nothing is created for them.
    """
    targets: list[Target] = []
    decisions: list[Decision] = []
    for pod in pods:
        try:
            detector.ensure_complete(started(pod))
        except RecordsLost as error:
            message = f"{error}: the recorded profile would be incomplete, so it is not created"
            decisions += [Decision(target, error=message) for target in recorded_targets(pod)]
        else:
            targets += recorded_targets(pod)
    for target in targets:
        recording = (recordings or {}).get((target.ref.namespace, target.recording))
        disabled, partial = disabled_by(recording), merging_by(recording)
        if target.kind == SELINUX_KIND:
            allow, left_out = selinux_allow((avcs or {}).get(target.ref))
            obj = selinux_profile(target, allow, disabled, partial=partial)
            problem = (
                None if partial else selinux_name_problem(target.profile, target.ref.namespace)
            )
            warnings = left_out + ((problem,) if problem else ())
            decisions.append(Decision(target, obj, warnings=warnings))
            continue
        calls = recorded.get(target.ref)
        if calls is None or not calls.names:
            decisions.append(Decision(target, error="no syscalls were recorded for this container"))
            continue
        decisions.append(
            Decision(target, seccomp_profile(target, calls.names, arch, disabled, partial=partial))
        )
    return decisions


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


_STATUS_LISTS: Final = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")


def essential(pod: Mapping[str, Any]) -> Json:
    """What finishing ``pod`` reads: its names, recording annotations, phase and container ids."""
    metadata = _metadata(pod)
    status = pod.get("status") or {}
    kept: Json = {
        "metadata": {
            key: metadata[key]
            for key in ("namespace", "name", "uid", "generateName", "creationTimestamp")
            if metadata.get(key)
        },
        "status": {"phase": status.get("phase")} if status.get("phase") else {},
    }
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if str(key).startswith(_RECORDING_PREFIXES)
    }
    if annotations:
        kept["metadata"]["annotations"] = annotations
    for key in _STATUS_LISTS:
        entries = [
            {"name": entry.get("name"), "containerID": entry.get("containerID")}
            for entry in status.get(key) or ()
            if entry.get("containerID")
        ]
        if entries:
            kept["status"][key] = entries
    return kept


class RecordingAgent:
    """Keeps the recorded pods of this node; creates their profiles when they are done.

    ``create(obj)`` creates one SeccompProfile or SelinuxProfile, by the
    object's ``kind`` (raising on failure); ``recording(namespace, name)``
    returns the ProfileRecording object, or None. Calls may come from several
    threads (a pod watch, the log follower): the recorder is only touched under
    ``lock``, which the thread feeding the recorder shares (one of its own by
    default).
    """

    def __init__(
        self,
        recorder: Recorder,
        create: Callable[[Json], object],
        *,
        recording: Callable[[str, str], Mapping[str, Any] | None] | None = None,
        arch: str | None = None,
        lock: threading.Lock | None = None,
        report: Callable[[Decision], object] | None = None,
        retry: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self.recorder = recorder
        self._create = create
        self._report = report
        self._retry = retry
        self._recording = recording
        self.arch = arch if arch is not None else native_arch()
        self._pods: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._done: set[tuple[str, str, str]] = set()  # (namespace, name, uid)
        self._lock = threading.Lock()
        # the recorder is not thread-safe
        self._recorder_lock = lock if lock is not None else threading.Lock()

    @staticmethod
    def _identity(pod: Mapping[str, Any]) -> tuple[str, str, str]:
        namespace, name = pod_key(pod)
        return namespace, name, str(_metadata(pod).get("uid") or "")

    def gone(self, listed: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The recorded pods known now that a fresh list of the node's pods lacks."""
        present = {pod_key(pod) for pod in listed}
        with self._lock:
            return [pod for key, pod in self._pods.items() if key not in present]

    def snapshot(self) -> list[Json]:
        """The recorded pods not finished yet, cut to what finishing them needs (saved with the
        recording, so that a pod deleted while the log enricher was down is still finished)."""
        with self._lock:
            return [essential(pod) for pod in self._pods.values()]

    def restore(self, pods: Iterable[Mapping[str, Any]]) -> int:
        """Know ``pods`` again (a :meth:`snapshot`); the next relist finishes those that are gone."""
        restored = 0
        for pod in pods:
            if not isinstance(pod, Mapping) or not recorded_targets(pod):
                continue
            with self._lock:
                self._pods.setdefault(pod_key(pod), pod)
            restored += 1
        return restored

    def remember(self, pod: Mapping[str, Any]) -> bool:
        """Keep ``pod`` if it is recorded and not finished yet (so that it is saved); whether kept."""
        if not recorded_targets(pod) or self._identity(pod) in self._done:
            return False
        with self._lock:
            self._pods[pod_key(pod)] = pod
        return True

    def settle(self, pod: Mapping[str, Any]) -> list[Decision]:
        """The deferred half of observing ``pod`` (remembered when it was seen): finish it if that
        state of it Succeeded. An older state never replaces a newer one remembered since."""
        if not finished(pod) or not self.remember(pod):
            return []
        return self.finish(pod)

    def observe(self, pod: Mapping[str, Any]) -> list[Decision]:
        """A pod was added or changed: remember it if recorded; finish it if it Succeeded."""
        if not self.remember(pod):
            return []
        return self.finish(pod) if finished(pod) else []

    def deleted(self, pod: Mapping[str, Any]) -> list[Decision]:
        """A pod was deleted: its recording is over."""
        with self._lock:
            known = self._pods.get(pod_key(pod))
        # the last state seen may name container ids the deleted object no longer lists
        chosen = pod if (pod.get("status") or {}).get("containerStatuses") else known or pod
        if not recorded_targets(chosen):
            return []
        return self.finish(chosen)

    def relist(self, pods: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """A fresh list of this node's pods: known recorded pods missing from it were deleted."""
        listed = list(pods)
        decisions = [d for pod in listed for d in self.observe(pod)]
        for pod in self.gone(listed):
            decisions.extend(self.deleted(pod))
        return decisions

    def finish(self, pod: Mapping[str, Any]) -> list[Decision]:
        """Decide and create the profiles of ``pod``; forget what was recorded for it."""
        identity = self._identity(pod)
        with self._lock:
            if identity in self._done:
                return []
        index = container_index([pod])
        namespace = pod_key(pod)[0]
        recordings: dict[tuple[str, str], Mapping[str, Any]] = {}
        if self._recording is not None:
            for name in sorted({target.recording for target in recorded_targets(pod)}):
                try:
                    found = self._recording(namespace, name)
                except Exception as error:  # the caller's client: the recording decides too much
                    return self._later(pod, f"reading the ProfileRecording {name} failed: {error}")
                if found is not None:
                    recordings[(namespace, name)] = found
        with self._lock:
            if identity in self._done:
                return []
            self._done.add(identity)
            self._pods.pop(pod_key(pod), None)
        with self._recorder_lock:
            decisions = decide(
                [pod],
                self.recorder.seccomp(index),
                self.recorder.detector,
                arch=self.arch,
                recordings=recordings,
                avcs=self.recorder.selinux(index),
            )
            for container_id in index:
                self.recorder.forget(container_id)
        applied = [self._apply(decision) for decision in decisions]
        if self._report is not None:
            for decision in applied:
                try:
                    self._report(decision)
                except Exception as error:  # best effort: an Event is not worth a crash
                    log.debug("cannot report %s: %s", decision.name, error, extra=about(namespace, decision.name))
        return applied

    def _later(self, pod: Mapping[str, Any], why: str) -> list[Decision]:
        """Finishing ``pod`` must wait (its recording could not be read): try again later.

        Its merge strategy and ``disableProfileAfterRecording`` decide the profile's
        name and content, so guessing them is worse than waiting."""
        namespace, name = pod_key(pod)
        log.warning("%s: the profiles of pod %s wait; trying again", why, name, extra=about(namespace, name))
        with self._lock:
            self._pods.setdefault(pod_key(pod), pod)
        if self._retry is not None:
            self._retry(lambda: self.finish(pod))
        return []

    def consume(
        self, lines: Iterable[str], each: Callable[[AuditRecord, str | None], None] | None = None
    ) -> int:
        """Feed audit log lines to the recorder (safe against a concurrent :meth:`finish`);
        ``each`` as in :meth:`nodesync.recording.Recorder.consume`."""
        with self._recorder_lock:
            return self.recorder.consume(lines, each)

    def _apply(self, decision: Decision) -> Decision:
        ref = decision.target.ref
        kind = decision.target.kind
        where = about(ref.namespace, decision.name)
        if decision.profile is None:
            log.error(
                "NOT creating the recorded %s %s of container %s of pod %s: %s",
                kind,
                decision.name,
                ref.container,
                ref.pod,
                decision.error,
                extra=where,
            )
            return decision
        for warning in decision.warnings:
            log.warning(
                "recorded %s %s of container %s of pod %s: %s",
                kind,
                decision.name,
                ref.container,
                ref.pod,
                warning,
                extra=where,
            )
        try:
            self._create(decision.profile)
        except Exception as error:  # the caller's client: any failure is reported, not raised
            message = f"creating the recorded {kind} failed: {error}"
            log.error("%s", message, extra=where)
            return Decision(decision.target, error=message, warnings=decision.warnings)
        log.info(
            "created the recorded %s %s (%d %s) of container %s of pod %s",
            kind,
            decision.name,
            rule_count(decision.profile),
            "permissions" if kind == SELINUX_KIND else "syscalls",
            ref.container,
            ref.pod,
            extra=where,
        )
        return decision
