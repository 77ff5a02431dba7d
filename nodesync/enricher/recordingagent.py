"""Turn what the recorder saw into SeccompProfile and SelinuxProfile objects when a recorded pod is
done.

The decisions (:func:`recorded_targets`, :func:`decide`, :func:`seccomp_profile`,
:func:`selinux_profile`) are pure functions; :class:`RecordingAgent` is the thin
part that keeps the pods it was shown and creates the profiles through a
``create(obj)`` callable. Names, labels, partial profiles and what lost records
do to a recording: docs/architecture.md, "Recording".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hooks.api.base import Object
from hooks.api.profilerecording import (
    MergeStrategy,
)
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.api.selinuxprofile import (
    SelinuxProfileSpec,
)
from hooks.api.syscalls import native_arch
from nodesync.enricher.auditlog import AuditRecord
from nodesync.enricher.containers import ContainerRef, container_index, pod_key
from nodesync.enricher.losses import LossDetector, RecordsLost
from nodesync.enricher.recordedpods import (
    Target,
    _metadata,
    essential,
    finished,
    recorded_targets,
    started,
)
from nodesync.enricher.recordedprofiles import (
    SELINUX_KIND,
    profile_object,
    rule_count,
    seccomp_spec,
    selinux_allow,
    selinux_name_problem,
    selinux_spec,
)
from nodesync.enricher.recorder import RecordedAvcs, RecordedSyscalls, Recorder
from nodesync.nodeio.logs import about

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one target: create ``profile``, or nothing because of ``error``.

    ``warnings`` say what was recorded but left out of the profile.
    """

    target: Target
    profile: Object | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name of the profile created (or that would have been)."""
        if self.profile is not None:
            return str(self.profile["metadata"]["name"])
        return self.target.profile


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


def _target_object(
    target: Target, spec: SeccompProfileSpec | SelinuxProfileSpec, partial: bool
) -> Object:
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
) -> Object:
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
) -> Object:
    """The SelinuxProfile object to create for ``target``, allowing ``allow`` (already checked)."""
    return _target_object(target, selinux_spec(allow, disabled and not partial), partial)


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
        create: Callable[[Object], object],
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

    def snapshot(self) -> list[Object]:
        """The recorded pods not finished yet, cut to what finishing them needs (saved with the
        recording, so that a pod deleted while the log enricher was down is still finished)."""
        with self._lock:
            return [essential(pod) for pod in self._pods.values()]

    def restore(self, pods: Iterable[Mapping[str, Any]]) -> int:
        """Know ``pods`` again (a :meth:`snapshot`); the next relist finishes those that are
        gone."""
        restored = 0
        for pod in pods:
            if not isinstance(pod, Mapping) or not recorded_targets(pod):
                continue
            with self._lock:
                self._pods.setdefault(pod_key(pod), pod)
            restored += 1
        return restored

    def remember(self, pod: Mapping[str, Any]) -> bool:
        """Keep ``pod`` if it is recorded and not finished yet (so that it is saved); whether
        kept."""
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
                    log.debug(
                        "cannot report %s: %s",
                        decision.name,
                        error,
                        extra=about(namespace, decision.name),
                    )
        return applied

    def _later(self, pod: Mapping[str, Any], why: str) -> list[Decision]:
        """Finishing ``pod`` must wait (its recording could not be read): try again later.

        Its merge strategy and ``disableProfileAfterRecording`` decide the profile's
        name and content, so guessing them is worse than waiting."""
        namespace, name = pod_key(pod)
        log.warning(
            "%s: the profiles of pod %s wait; trying again", why, name, extra=about(namespace, name)
        )
        with self._lock:
            self._pods.setdefault(pod_key(pod), pod)
        if self._retry is not None:
            self._retry(lambda: self.finish(pod))
        return []

    def consume(
        self, lines: Iterable[str], each: Callable[[AuditRecord, str | None], None] | None = None
    ) -> int:
        """Feed audit log lines to the recorder (safe against a concurrent :meth:`finish`);
        ``each`` as in :meth:`nodesync.enricher.recorder.Recorder.consume`."""
        with self._recorder_lock:
            return self.recorder.consume(lines, each)

    def consume_text(
        self, text: str, each: Callable[[AuditRecord, str | None], None] | None = None
    ) -> int:
        """:meth:`consume` of the lines of ``text`` (joined by newlines), never split for the
        log enricher (:meth:`nodesync.enricher.recorder.Recorder.consume_text`)."""
        with self._recorder_lock:
            return self.recorder.consume_text(text, each)

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
