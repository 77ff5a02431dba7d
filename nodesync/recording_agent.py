"""Turn what the recorder saw into SeccompProfile objects when a recorded pod is done.

The recording webhook marks each recorded container ``<c>`` of a pod with the
annotation ``io.containers.trace-logs/<c>: <recording>_<c>_<nonce>_<stamp>``.
When such a pod has phase ``Succeeded`` or is deleted, each of its marked
containers yields one SeccompProfile in the pod's namespace, named
``<recording>-<container>`` (plus ``-<suffix>`` for a pod made from
``metadata.generateName``: the part of its name after that prefix, so that the
replicas of a workload do not overwrite each other), labelled with the
recording's and the container's names, denying by default (``SCMP_ACT_ERRNO``)
and allowing exactly the syscalls recorded, sorted, for this node's
architecture. It is created ``disabled`` when its ProfileRecording says
``disableProfileAfterRecording``.

Lost audit records make an incomplete profile that would break the workload
it is meant for: when the loss detector saw any, no profile is created and the
outcome is an error that says so.

The decisions (:func:`recorded_targets`, :func:`decide`, :func:`seccomp_profile`)
are pure functions; :class:`RecordingAgent` is the thin part that keeps the pods
it was shown and creates the profiles through a ``create(obj)`` callable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hooks.api import GROUP
from hooks.api.profilerecording import (
    PROFILE_TO_CONTAINER_LABEL,
    PROFILE_TO_RECORDING_LABEL,
    SECCOMP_RECORD_LOGS_ANNOTATION,
)
from hooks.seccomp.syscalls import native_arch
from nodesync.containers import ContainerRef, container_index
from nodesync.logs import about
from nodesync.recording import LossDetector, RecordedSyscalls, Recorder, RecordsLost

log = logging.getLogger(__name__)

API_VERSION: Final = f"{GROUP}/v1beta1"
KIND: Final = "SeccompProfile"
DEFAULT_ACTION: Final = "SCMP_ACT_ERRNO"
ALLOW: Final = "SCMP_ACT_ALLOW"
_ID_PARTS: Final = 4

Json = dict[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """A recorded container of a pod, and the profile its recording makes."""

    ref: ContainerRef
    recording: str
    profile: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one target: create ``profile``, or nothing because of ``error``."""

    target: Target
    profile: Json | None = None
    error: str | None = None


def _metadata(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def pod_key(pod: Mapping[str, Any]) -> tuple[str, str]:
    metadata = _metadata(pod)
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def profile_name(recording: str, container: str, metadata: Mapping[str, Any]) -> str:
    """``<recording>-<container>``, with ``-<suffix>`` for a pod named from ``generateName``."""
    name = f"{recording}-{container}"
    prefix = str(metadata.get("generateName") or "")
    if not prefix:
        return name
    pod = str(metadata.get("name") or "")
    suffix = pod[len(prefix) :] if pod.startswith(prefix) else pod
    return f"{name}-{suffix}" if suffix else name


def recording_of(value: object) -> str | None:
    """The recording's name in an annotation value ``<recording>_<container>_<nonce>_<stamp>``."""
    if not isinstance(value, str):
        return None
    parts = value.split("_")
    if len(parts) != _ID_PARTS or not parts[0]:
        return None
    return parts[0]


def recorded_targets(pod: Mapping[str, Any]) -> list[Target]:
    """The containers of ``pod`` recorded for a SeccompProfile from the audit log, sorted."""
    metadata = _metadata(pod)
    namespace, name = pod_key(pod)
    annotations = metadata.get("annotations") or {}
    targets: list[Target] = []
    for key, value in annotations.items():
        if not key.startswith(SECCOMP_RECORD_LOGS_ANNOTATION):
            continue
        container = key[len(SECCOMP_RECORD_LOGS_ANNOTATION) :]
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


def seccomp_profile(target: Target, names: Iterable[str], arch: str, disabled: bool) -> Json:
    """The SeccompProfile object to create for ``target``, allowing ``names``."""
    spec: Json = {
        "defaultAction": DEFAULT_ACTION,
        "architectures": [arch],
        "syscalls": [{"action": ALLOW, "names": sorted(set(names))}],
    }
    if disabled:
        spec["disabled"] = True
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": target.profile,
            "namespace": target.ref.namespace,
            "labels": {
                PROFILE_TO_RECORDING_LABEL: target.recording,
                PROFILE_TO_CONTAINER_LABEL: target.ref.container,
            },
        },
        "spec": spec,
    }


def decide(
    pods: Iterable[Mapping[str, Any]],
    recorded: Mapping[ContainerRef, RecordedSyscalls],
    detector: LossDetector,
    *,
    arch: str,
    recordings: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[Decision]:
    """The profiles to create for ``pods``, whose recording is over.

    ``recorded`` is what the recorder saw per container, ``recordings`` the
    ProfileRecording objects by (namespace, name) when known. When the
    detector saw lost records, every target is an error and nothing is created.
    """
    targets = [target for pod in pods for target in recorded_targets(pod)]
    try:
        detector.ensure_complete()
    except RecordsLost as error:
        message = f"{error}: the recorded profile would be incomplete, so it is not created"
        return [Decision(target, error=message) for target in targets]
    decisions: list[Decision] = []
    for target in targets:
        calls = recorded.get(target.ref)
        if calls is None or not calls.names:
            decisions.append(Decision(target, error="no syscalls were recorded for this container"))
            continue
        recording = (recordings or {}).get((target.ref.namespace, target.recording))
        decisions.append(
            Decision(target, seccomp_profile(target, calls.names, arch, disabled_by(recording)))
        )
    return decisions


class RecordingAgent:
    """Keeps the recorded pods of this node; creates their profiles when they are done.

    ``create(obj)`` creates one SeccompProfile (raising on failure);
    ``recording(namespace, name)`` returns the ProfileRecording object, or None.
    Calls may come from several threads (a pod watch, the log follower): one lock.
    """

    def __init__(
        self,
        recorder: Recorder,
        create: Callable[[Json], object],
        *,
        recording: Callable[[str, str], Mapping[str, Any] | None] | None = None,
        arch: str | None = None,
    ) -> None:
        self.recorder = recorder
        self._create = create
        self._recording = recording
        self.arch = arch if arch is not None else native_arch()
        self._pods: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._done: set[tuple[str, str, str]] = set()  # (namespace, name, uid)
        self._lock = threading.Lock()
        self._recorder_lock = threading.Lock()  # the recorder is not thread-safe

    @staticmethod
    def _identity(pod: Mapping[str, Any]) -> tuple[str, str, str]:
        namespace, name = pod_key(pod)
        return namespace, name, str(_metadata(pod).get("uid") or "")

    def pods(self) -> list[Mapping[str, Any]]:
        with self._lock:
            return list(self._pods.values())

    def observe(self, pod: Mapping[str, Any]) -> list[Decision]:
        """A pod was added or changed: remember it if recorded; finish it if it Succeeded."""
        if not recorded_targets(pod) or self._identity(pod) in self._done:
            return []
        with self._lock:
            self._pods[pod_key(pod)] = pod
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
        present = {pod_key(pod) for pod in listed}
        with self._lock:
            gone = [pod for key, pod in self._pods.items() if key not in present]
        for pod in gone:
            decisions.extend(self.deleted(pod))
        return decisions

    def finish(self, pod: Mapping[str, Any]) -> list[Decision]:
        """Decide and create the profiles of ``pod``; forget what was recorded for it."""
        identity = self._identity(pod)
        with self._lock:
            if identity in self._done:
                return []
            self._done.add(identity)
            self._pods.pop(pod_key(pod), None)
        index = container_index([pod])
        namespace = pod_key(pod)[0]
        recordings: dict[tuple[str, str], Mapping[str, Any]] = {}
        if self._recording is not None:
            for target in recorded_targets(pod):
                found = self._recording(namespace, target.recording)
                if found is not None:
                    recordings[(namespace, target.recording)] = found
        with self._recorder_lock:
            recorded = self.recorder.seccomp(index)
            decisions = decide(
                [pod], recorded, self.recorder.detector, arch=self.arch, recordings=recordings
            )
            for container_id in index:
                self.recorder.forget(container_id)
        return [self._apply(decision) for decision in decisions]

    def consume(self, lines: Iterable[str]) -> int:
        """Feed audit log lines to the recorder (safe against a concurrent :meth:`finish`)."""
        with self._recorder_lock:
            return self.recorder.consume(lines)

    def _apply(self, decision: Decision) -> Decision:
        ref = decision.target.ref
        where = about(ref.namespace, decision.target.profile)
        if decision.profile is None:
            log.error(
                "NOT creating the recorded profile %s of container %s of pod %s: %s",
                decision.target.profile,
                ref.container,
                ref.pod,
                decision.error,
                extra=where,
            )
            return decision
        try:
            self._create(decision.profile)
        except Exception as error:  # the caller's client: any failure is reported, not raised
            message = f"creating the recorded profile failed: {error}"
            log.error("%s", message, extra=where)
            return Decision(decision.target, error=message)
        log.info(
            "created the recorded profile %s (%d syscalls) of container %s of pod %s",
            decision.target.profile,
            len(decision.profile["spec"]["syscalls"][0]["names"]),
            ref.container,
            ref.pod,
            extra=where,
        )
        return decision


def follow_loop(batches: Iterable[list[str]], agent: RecordingAgent) -> None:
    """Feed every batch of audit log lines (``Follower.batches(stop)``) to the agent's recorder."""
    for batch in batches:
        agent.consume(batch)


def pods_loop(
    list_pods: Callable[[], list[Json]],
    agent: RecordingAgent,
    stop: threading.Event,
    interval: float,
) -> None:
    """List this node's pods every ``interval`` seconds and hand them to the agent.

    A failed list is logged and tried again at the next round: pods that are
    gone are noticed by the first list that succeeds.
    """
    while not stop.is_set():
        try:
            pods = list_pods()
        except Exception as error:  # the cluster client: log, try again next round
            log.warning("listing this node's pods failed: %s", error, extra=about("", ""))
        else:
            agent.relist(pods)
        stop.wait(interval)
