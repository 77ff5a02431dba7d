"""The recording webhook: an AdmissionReview for a new pod in, the JSONPatch that records it out.

``admit`` is a pure function of the review and the recording table. Like the
binding webhook it never refuses a pod; what it could not do is said in a
warning (kubectl prints ``Warning: ...``).

Rules:
- only pod CREATE is mutated; a pod that no recording of its namespace selects
  is returned untouched;
- a recording selects a pod by ``podSelector`` and, when ``containers`` is set,
  only the containers (init containers included) of those names; an empty
  ``containers`` list selects none, as in the Go operator;
- each selected container gets the annotation ``<prefix><container>`` with a
  recording id (``hooks.api.podannotations``) and a security context that
  makes the kernel report what it does: the seccomp profile
  ``operator/security-profiles-operator/log-enricher-trace.json`` (which logs
  every syscall) for a SeccompProfile recording, the permissive SELinux type
  ``selinuxrecording.process`` for a SelinuxProfile recording;
- recording overrides what the user set (a recorded container must run under
  the logging profile), and says so in a warning;
- of two recordings of the same kind that select one container, the oldest
  records it and the other is reported;
- a seccomp recording waits (with a warning) until the logging profile is
  Installed: a pod naming a profile its node does not have cannot start;
- the ``bpf`` recorder is not provided by this operator: such a recording is
  skipped with a warning; so are Windows pods.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from hooks.api import podannotations
from hooks.api import profilerecording as api
from hooks.cluster.binding.admission import (
    AdmissionResponse,
    AdmissionReviewRequest,
    AdmissionReviewResponse,
    capped,
    is_pod_create,
)
from hooks.cluster.recording import selectors
from hooks.cluster.recording.table import Recording, RecordingTable
from hooks.logs import about

log = logging.getLogger(__name__)

_CONTAINER_LISTS = ("initContainers", "containers")
SECCOMP = api.RecordingKind.SECCOMP_PROFILE
SELINUX = api.RecordingKind.SELINUX_PROFILE


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pointer(key: str) -> str:
    """A map key as one JSON Pointer segment (RFC 6901): annotation keys contain ``/``."""
    return key.replace("~", "~0").replace("/", "~1")


@dataclass
class _Container:
    """One container the webhook changes: where it is, its security context as sent, and the new
    values."""

    path: str
    context: Any
    seccomp: dict[str, str] | None = None
    selinux_type: str | None = None

    def ops(self) -> list[dict[str, Any]]:
        if not isinstance(self.context, dict):
            value: dict[str, Any] = {}
            if self.seccomp is not None:
                value["seccompProfile"] = self.seccomp
            if self.selinux_type is not None:
                value["seLinuxOptions"] = {"type": self.selinux_type}
            return [{"op": "add", "path": self.path, "value": value}]
        ops: list[dict[str, Any]] = []
        if self.seccomp is not None:
            ops.append({"op": "add", "path": f"{self.path}/seccompProfile", "value": self.seccomp})
        if self.selinux_type is not None:
            if isinstance(self.context.get("seLinuxOptions"), dict):
                ops.append(
                    {
                        "op": "add",
                        "path": f"{self.path}/seLinuxOptions/type",
                        "value": self.selinux_type,
                    }
                )
            else:
                ops.append(
                    {
                        "op": "add",
                        "path": f"{self.path}/seLinuxOptions",
                        "value": {"type": self.selinux_type},
                    }
                )
        return ops


@dataclass
class _Pod:
    """What ``admit`` decides for one pod: changed containers, new annotations, warnings."""

    uid: str
    has_metadata: bool
    metadata: dict[str, Any]
    spec: dict[str, Any]
    containers: dict[str, _Container] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    recorded_by: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def ops(self) -> list[dict[str, Any]]:
        ops = [op for container in self.containers.values() for op in container.ops()]
        if not self.annotations:
            return ops
        if not self.has_metadata:
            return [
                *ops,
                {"op": "add", "path": "/metadata", "value": {"annotations": self.annotations}},
            ]
        if not isinstance(self.metadata.get("annotations"), dict):
            return [*ops, {"op": "add", "path": "/metadata/annotations", "value": self.annotations}]
        return ops + [
            {"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value}
            for key, value in self.annotations.items()
        ]


def _selected(recording: Recording, spec: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """``(list, index, container)`` of the containers ``recording`` records, in the pod's order."""
    found = []
    for list_name in _CONTAINER_LISTS:
        for index, container in enumerate(spec.get(list_name) or []):
            name = container.get("name") if isinstance(container, dict) else None
            if not isinstance(name, str) or not name:
                continue
            if recording.containers is None or name in recording.containers:
                found.append((list_name, index, container))
    return found


def _seccomp(
    pod: _Pod, recording: Recording, name: str, change: _Container, profile: dict[str, str]
) -> None:
    own = _dict(change.context).get("seccompProfile")
    if own and own != profile:
        pod.warn(
            f"spo: recording {recording.name!r} replaces the seccomp profile of container "
            f"{name!r} with the logging profile"
        )
    elif not own and _dict(pod.spec.get("securityContext")).get("seccompProfile"):
        pod.warn(
            f"spo: recording {recording.name!r} overrides the pod's seccomp profile for "
            f"container {name!r}"
        )
    change.seccomp = profile


def _selinux(pod: _Pod, recording: Recording, name: str, change: _Container) -> None:
    wanted = podannotations.SELINUX_RECORDING_TYPE
    own = _dict(_dict(change.context).get("seLinuxOptions")).get("type")
    if own and own != wanted:
        pod.warn(
            f"spo: recording {recording.name!r} replaces the SELinux type {own!r} of container "
            f"{name!r} with {wanted!r}"
        )
    elif not own and _dict(_dict(pod.spec.get("securityContext")).get("seLinuxOptions")).get(
        "type"
    ):
        pod.warn(
            f"spo: recording {recording.name!r} overrides the pod's SELinux type for container "
            f"{name!r}"
        )
    change.selinux_type = wanted


def _record(pod: _Pod, recording: Recording, table: RecordingTable) -> None:
    prefix = podannotations.prefix(recording.kind, recording.recorder)
    if recording.recorder is not api.Recorder.LOGS or prefix is None:
        pod.warn(
            f"spo: recording {recording.name!r} skipped: the {recording.recorder.value} "
            "recorder is not available in this operator"
        )
        return
    if recording.kind is SECCOMP and not table.logging.usable:
        pod.warn(
            f"spo: recording {recording.name!r} skipped: the logging seccomp profile "
            f"{api.LOG_ENRICHER_PROFILE!r} "
            f"is not installed yet (status {table.logging.state})"
        )
        return
    existing = _dict(pod.metadata.get("annotations"))
    for list_name, index, container in _selected(recording, pod.spec):
        name = str(container["name"])
        key = prefix + name
        if key in pod.recorded_by:
            pod.warn(
                f"spo: recording {recording.name!r} ignored for container {name!r}: "
                f"the older recording {pod.recorded_by[key]!r} records it"
            )
            continue
        if key in existing:
            pod.warn(
                f"spo: recording {recording.name!r} replaces the annotation {key} the pod came with"
            )
        pod.recorded_by[key] = recording.name
        pod.annotations[key] = podannotations.recording_id(recording.name, name, pod.uid)
        path = f"/spec/{list_name}/{index}/securityContext"
        change = pod.containers.setdefault(path, _Container(path, container.get("securityContext")))
        if recording.kind is SECCOMP:
            _seccomp(
                pod,
                recording,
                name,
                change,
                {"type": "Localhost", "localhostProfile": table.logging.value},
            )
        else:
            _selinux(pod, recording, name, change)
        if _dict(container.get("securityContext")).get("privileged") is True:
            pod.warn(
                f"spo: container {name!r} is privileged: recording {recording.name!r} will not "
                "see what it does"
            )


def admit(
    review: AdmissionReviewRequest, table: RecordingTable, *, table_loaded: bool = True
) -> AdmissionReviewResponse:
    """The answer to one AdmissionReview: always allowed, with a JSONPatch when a recording selects
    the pod."""
    request = review.request
    response = AdmissionResponse(uid=request.uid, allowed=True)
    if not is_pod_create(review.request) or not isinstance(review.request.object, dict):
        return AdmissionReviewResponse(response=response)
    pod_object = _dict(request.object)
    metadata = _dict(pod_object.get("metadata"))
    namespace = request.namespace or str(metadata.get("namespace") or "")
    if not table_loaded:
        response.warnings = [
            "spo: the recording table is not available yet; the pod is not recorded"
        ]
        return AdmissionReviewResponse(response=response)
    labels = {str(k): str(v) for k, v in _dict(metadata.get("labels")).items()}
    selected = [r for r in table.of(namespace) if selectors.matches(r.podSelector, labels)]
    if not selected:
        return AdmissionReviewResponse(response=response)
    pod = _Pod(
        request.uid,
        isinstance(pod_object.get("metadata"), dict),
        metadata,
        _dict(pod_object.get("spec")),
    )
    if _dict(pod.spec.get("os")).get("name") == "windows":
        pod.warn("spo: profile recording is not available for Windows pods")
    else:
        for recording in selected:
            _record(pod, recording, table)
    ops = pod.ops()
    if ops:
        response.patchType = "JSONPatch"
        response.patch = base64.b64encode(json.dumps(ops, separators=(",", ":")).encode()).decode()
        log.info(
            "pod recorded: %d containers",
            len(pod.annotations),
            extra=about(
                namespace=namespace, name=metadata.get("name") or metadata.get("generateName")
            ),
        )
    response.warnings = capped(pod.warnings, "recording")
    return AdmissionReviewResponse(response=response)
