"""The ProfileRecording CompositeController: status and finalize, as pure functions. No children.

``status.activeWorkloads`` lists, by name as the Go operator wrote them, the
pods of the recording's namespace that carry a recording annotation of this
recording (``hooks.api.podannotations``) and still run: not finished, not
being deleted.

Finalize holds the recording while one of its recorded containers has not been
collected. The recorder collects a container's profile when the container
stops, and labels what it writes with the recording's name
(``spo.x-k8s.io/recording-id``) and the container's
(``spo.x-k8s.io/container-id``), the Go operator's labels; nothing on a
recorded profile names the pod. So a recorded container is collected when its
pod has finished (phase Succeeded or Failed) and a profile of the recording's
kind in its namespace carries both labels; a pod that still exists and runs, or
is terminating, is waited for. A pod that is gone is no longer seen, so it
cannot hold the recording: deleting a pod is also how a user gives up on its
profile.

With ``mergeStrategy: containers`` the recorder writes partial profiles
(labelled ``spo.x-k8s.io/partial``), which the recorders merge into one
profile per container once the recording is being deleted
(``nodesync.enricher.merging``). A partial profile proves that its container
was collected, so finalize first waits, as above, for every recorded pod to
finish and have a profile of some sort; then, while a container of a finished
pod or of a partial profile has no merged (not partial) profile, it answers
with the reason ``WaitingForMerge``: the signal the merge waits for, given only
when no recorded pod runs any more, so that no replica's partial profile comes
after the merge. It finalizes when every such container has its merged profile.

The Ready condition says whether the recording can record: False with
``InvalidProfileRecording`` (an unusable selector), ``RecorderNotSupported``
(``bpf``) or ``LoggingProfileNotInstalled``; True with ``Recording`` otherwise.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from hooks.api import podannotations
from hooks.api import profilerecording as api
from hooks.api import seccompprofile as seccomp_api
from hooks.api.base import Condition
from hooks.api.kinds import Kind
from hooks.api.names import name_problem
from hooks.api.profilerecording import WAITING_FOR_MERGE
from hooks.api.registry import RECORDED_KINDS
from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster import podusage
from hooks.cluster.contract import (
    POD,
    CustomizeRequest,
    CustomizeResponse,
    LabelSelector,
    ResourceRule,
    SyncRequest,
    SyncResponse,
    group_key,
)
from hooks.cluster.profilestatus import ready_conditions
from hooks.cluster.recording.table import INVALID, logging_profile, parse
from hooks.logs import about

log = logging.getLogger(__name__)

RECORDING = "Recording"
RECORDER_NOT_SUPPORTED = "RecorderNotSupported"
LOGGING_PROFILE_NOT_INSTALLED = "LoggingProfileNotInstalled"
DELETING = "Deleting"
FINALIZE_RESYNC_SECONDS = 10.0
MAX_LISTED = 5
_FINISHED = ("Succeeded", "Failed")
_PROFILE_KINDS: dict[str, Kind] = {kind.kind: kind for kind in RECORDED_KINDS}
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _profiles_key(kind: api.RecordingKind) -> str:
    profile_kind = _PROFILE_KINDS[kind.value]
    return group_key(profile_kind.kind, profile_kind.api_version)


def customize(request: CustomizeRequest) -> CustomizeResponse:
    """The pods of the recording's namespace, the profiles recorded for it and, for seccomp, the
    logging profile."""
    meta = request.parent.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    if name_problem(meta.get("name"), meta.get("namespace")):
        return CustomizeResponse()  # the sync hook answers with the Error
    rules = [podusage.rule(request.parent, api.KIND.kind, name)]
    kind = _PROFILE_KINDS.get(str((request.parent.get("spec") or {}).get("kind")))
    if kind is not None:
        # A name too long for a label value cannot be selected on: then every profile of the
        # namespace comes.
        selector = (
            LabelSelector(matchLabels={api.PROFILE_TO_RECORDING_LABEL: name})
            if len(name) <= 63 and _LABEL_VALUE.match(name)
            else None
        )
        rules.append(
            ResourceRule(
                apiVersion=kind.api_version,
                resource=kind.plural,
                namespace=namespace,
                labelSelector=selector,
            )
        )
    if kind is seccomp_api.KIND:
        rules.append(
            ResourceRule(
                apiVersion=kind.api_version,
                resource=kind.plural,
                namespace=OPERATOR_NAMESPACE,
                names=[api.LOG_ENRICHER_PROFILE],
            )
        )
    return CustomizeResponse(relatedResources=rules)


@dataclass(frozen=True)
class RecordedPod:
    """A pod of the namespace that carries recording annotations of one recording."""

    name: str
    containers: tuple[str, ...]
    running: bool  # not finished and not being deleted
    finished: bool


def recorded_pods(pods: list[dict[str, Any]], recording: api.ProfileRecording) -> list[RecordedPod]:
    """The pods of the recording's namespace that it records (or recorded), sorted by name."""
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("namespace", recording.namespace) != recording.namespace:
            continue
        containers = tuple(
            podannotations.recorded_containers(
                meta.get("annotations") or {}, recording.spec.kind, recording.name
            )
        )
        if not containers:
            continue
        finished = (pod.get("status") or {}).get("phase") in _FINISHED
        running = not finished and not meta.get("deletionTimestamp")
        found.append(RecordedPod(str(meta.get("name", "")), containers, running, finished))
    return sorted(found, key=lambda p: p.name)


def _recorded_containers(
    profiles: list[dict[str, Any]], recording: api.ProfileRecording
) -> list[tuple[str, bool]]:
    """(container, partial) of every profile labelled as recorded by ``recording`` for a
    container."""
    found = []
    for profile in profiles:
        meta = profile.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("namespace", recording.namespace) != recording.namespace:
            continue
        if labels.get(api.PROFILE_TO_RECORDING_LABEL) == recording.name and labels.get(
            api.PROFILE_TO_CONTAINER_LABEL
        ):
            found.append(
                (str(labels[api.PROFILE_TO_CONTAINER_LABEL]), api.PROFILE_PARTIAL_LABEL in labels)
            )
    return found


def collected_containers(
    profiles: list[dict[str, Any]], recording: api.ProfileRecording
) -> set[str]:
    """The container names for which a profile labelled as recorded by ``recording`` exists
    (partial or not)."""
    return {container for container, _ in _recorded_containers(profiles, recording)}


def merged_containers(profiles: list[dict[str, Any]], recording: api.ProfileRecording) -> set[str]:
    """The container names for which a profile of ``recording`` that is not partial exists."""
    return {
        container for container, partial in _recorded_containers(profiles, recording) if not partial
    }


def unmerged(
    pods: list[RecordedPod], profiles: list[dict[str, Any]], recording: api.ProfileRecording
) -> list[str]:
    """The containers, sorted, of finished pods or of partial profiles that have no merged profile
    yet."""
    recorded = _recorded_containers(profiles, recording)
    containers = {container for pod in pods if pod.finished for container in pod.containers}
    containers |= {container for container, partial in recorded if partial}
    return sorted(containers - {container for container, partial in recorded if not partial})


def not_collected(pods: list[RecordedPod], collected: set[str]) -> list[str]:
    """``<pod>/<container>`` of every recorded container whose profile is not collected yet."""
    return [
        f"{pod.name}/{container}"
        for pod in pods
        for container in pod.containers
        if not pod.finished or container not in collected
    ]


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _condition(ready: bool, reason: str, message: str, observed: Any, now: str) -> Condition:
    return ready_conditions(ready, reason, message, observed, now)[0]


def sync(request: SyncRequest, now: str) -> SyncResponse:
    """The status of one ProfileRecording; also its finalize hook."""
    meta = request.parent.get("metadata") or {}
    observed = (request.parent.get("status") or {}).get("conditions")
    recording, problem = parse(request.parent)
    if recording is None:
        log.warning(
            "profile recording rejected: %s",
            problem,
            extra=about(namespace=meta.get("namespace"), name=meta.get("name"), reason=INVALID),
        )
        status = api.ProfileRecordingStatus(
            conditions=[_condition(False, INVALID, str(problem), observed, now)]
        )
        return SyncResponse(status=status.to_wire(), finalized=True if request.finalizing else None)

    spec = recording.spec
    pods = recorded_pods(request.related_of(POD), recording)
    active = [pod.name for pod in pods if pod.running]
    profiles = request.related_of(_profiles_key(spec.kind))
    finalized: bool | None = None
    resync: float | None = None
    if request.finalizing:
        condition, finalized = _finalize(pods, profiles, recording, observed, now)
        resync = None if finalized else FINALIZE_RESYNC_SECONDS
    elif spec.recorder is not api.Recorder.LOGS:
        message = (
            f"the {spec.recorder.value} recorder is not available in this operator; pods are not "
            "recorded"
        )
        condition = _condition(False, RECORDER_NOT_SUPPORTED, message, observed, now)
    elif (
        spec.kind is api.RecordingKind.SECCOMP_PROFILE
        and not (logging := logging_profile(profiles)).usable
    ):
        message = (
            f"the logging seccomp profile {OPERATOR_NAMESPACE}/{api.LOG_ENRICHER_PROFILE} is "
            "not installed "
            f"(status {logging.state}); pods are not recorded"
        )
        condition = _condition(False, LOGGING_PROFILE_NOT_INSTALLED, message, observed, now)
    else:
        message = (
            f"recording {_count(len(active), 'pod')}"
            if active
            else "new pods that match the selector are recorded"
        )
        condition = _condition(True, RECORDING, message, observed, now)
    status = api.ProfileRecordingStatus(activeWorkloads=active or None, conditions=[condition])
    return SyncResponse(status=status.to_wire(), resyncAfterSeconds=resync, finalized=finalized)


def _finalize(
    pods: list[RecordedPod],
    profiles: list[dict[str, Any]],
    recording: api.ProfileRecording,
    observed: Any,
    now: str,
) -> tuple[Condition, bool]:
    """The Deleting (or WaitingForMerge) condition, and whether the recording can go."""
    pending = not_collected(pods, collected_containers(profiles, recording))
    if pending:
        message = (
            f"waiting for the profiles of {_count(len(pending), 'recorded container')} "
            f"(delete a pod to give up on it): {_listed(pending)}"
        )
        return _condition(False, DELETING, message, observed, now), False
    waiting = (
        unmerged(pods, profiles, recording)
        if recording.spec.mergeStrategy is api.MergeStrategy.CONTAINERS
        else []
    )
    if waiting:
        message = (
            "every recorded container was collected; waiting for the recorder to merge the "
            "partial profiles "
            f"of {_count(len(waiting), 'container')}: {_listed(waiting)}"
        )
        return _condition(False, WAITING_FOR_MERGE, message, observed, now), False
    return _condition(
        False, DELETING, "every recorded container was collected", observed, now
    ), True
