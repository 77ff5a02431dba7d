"""The binding webhook: an AdmissionReview for a new pod in, the JSONPatch that binds it out.

``admit`` is a pure function of the review and the binding table. It never
refuses a pod: a binding whose profile is missing or not installed yet is
skipped, and the answer carries a warning (kubectl prints it as
``Warning: ...``), so a slow profile never blocks a deployment.

Rules (the Go operator's, written down):
- only pod CREATE is mutated; UPDATE and every other operation or resource is
  allowed unchanged (a running pod's security context is immutable anyway);
- a container (init containers included) whose ``image`` equals a binding's
  ``image`` gets ``securityContext.seccompProfile`` ``{type: Localhost,
  localhostProfile: <status.localhostProfile>}``, or
  ``securityContext.seLinuxOptions.type`` ``<status.usage>``;
- what the user wrote is never overridden: a container that already has a
  seccomp profile (an SELinux type) keeps it, and the answer warns that the
  binding was not applied to it;
- of several bindings of the same kind for one image, the oldest usable one
  wins and the others are reported as conflicts;
- ``image: "*"`` sets the pod-level profile (``spec.securityContext``) when no
  container of the pod got a binding of that kind and the pod has no
  pod-level profile of that kind; containers without their own inherit it;
- Windows pods are left alone (they cannot carry seccomp or SELinux options,
  so the API server would reject the patched pod).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from hooks.api.base import Open, Wire
from hooks.api.objectshapes import check_object
from hooks.cluster.binding.table import SECCOMP, SELINUX, WILDCARD, BindingTable, Entry
from hooks.logs import about

log = logging.getLogger(__name__)

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_WARNINGS = 10
MAX_WARNING_CHARS = 240
_CONTAINER_LISTS = ("initContainers", "containers")
_FIELD = {SECCOMP: "seccompProfile", SELINUX: "seLinuxOptions"}
_NOUN = {SECCOMP: "seccomp profile", SELINUX: "SELinux type"}


class GroupVersionResource(Open):
    group: str = ""
    version: str = ""
    resource: str = ""


class AdmissionRequest(Open):
    """The fields of an AdmissionRequest the webhook reads; the rest is kept as given."""

    uid: str = Field(min_length=1)
    operation: str
    namespace: str | None = None
    name: str | None = None
    resource: GroupVersionResource | None = None
    subResource: str | None = None
    object: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shaped(self) -> AdmissionRequest:
        if self.object is not None:
            pod = self.resource is not None and (self.resource.group, self.resource.resource) == (
                "",
                "pods",
            )
            check_object(self.object, "request.object", "Pod.v1" if pod else None)
        return self


class AdmissionReviewRequest(Open):
    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class AdmissionResponse(Wire):
    uid: str
    allowed: bool
    patchType: Literal["JSONPatch"] | None = None
    patch: str | None = None
    warnings: list[str] | None = None


class AdmissionReviewResponse(Wire):
    apiVersion: str = API_VERSION
    kind: str = KIND
    response: AdmissionResponse


@dataclass
class _Pod:
    """What ``admit`` decides for one pod: JSONPatch operations and warnings, in order."""

    spec: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _has(context: dict[str, Any], kind: str) -> bool:
    """Whether a security context already names a profile of ``kind``."""
    if kind == SECCOMP:
        return bool(context.get("seccompProfile"))
    return bool(_dict(context.get("seLinuxOptions")).get("type"))


def _set_ops(path: str, context: Any, additions: dict[str, str]) -> Iterator[dict[str, Any]]:
    """JSONPatch operations that add ``additions`` (kind -> value) to the security context at
    ``path``."""
    if not isinstance(context, dict):
        value: dict[str, Any] = {}
        for kind, wanted in additions.items():
            value[_FIELD[kind]] = _profile_value(kind, wanted)
        yield {"op": "add", "path": path, "value": value}
        return
    for kind, wanted in additions.items():
        if kind == SELINUX and isinstance(context.get("seLinuxOptions"), dict):
            yield {"op": "add", "path": f"{path}/seLinuxOptions/type", "value": wanted}
        else:
            yield {
                "op": "add",
                "path": f"{path}/{_FIELD[kind]}",
                "value": _profile_value(kind, wanted),
            }


def _profile_value(kind: str, wanted: str) -> dict[str, str]:
    if kind == SECCOMP:
        return {"type": "Localhost", "localhostProfile": wanted}
    return {"type": wanted}


def _unusable(entry: Entry) -> str:
    if entry.state == "Missing":
        return f"{entry.kind} {entry.profile!r} does not exist"
    return f"{entry.kind} {entry.profile!r} is not installed yet (status {entry.state})"


def _winner(pod: _Pod, entries: tuple[Entry, ...], kind: str, target: str) -> Entry | None:
    """The oldest usable binding of ``kind`` among ``entries``; warns about the others."""
    winner: Entry | None = None
    for entry in entries:
        if entry.kind != kind:
            continue
        if not entry.usable:
            pod.warn(f"spo: binding {entry.binding!r} skipped for {target}: {_unusable(entry)}")
        elif winner is None:
            winner = entry
        elif entry.value != winner.value:
            pod.warn(
                f"spo: binding {entry.binding!r} ignored for {target}: the older binding "
                f"{winner.binding!r} gives it {entry.kind} {winner.profile!r}"
            )
    return winner


def _bind(pod: _Pod, images: dict[str, tuple[Entry, ...]]) -> None:
    bound_kinds: set[str] = set()
    for list_name in _CONTAINER_LISTS:
        for index, container in enumerate(pod.spec.get(list_name) or []):
            if not isinstance(container, dict):
                continue
            entries = images.get(str(container.get("image", "")))
            if not entries:
                continue
            name = container.get("name", index)
            context = container.get("securityContext")
            additions: dict[str, str] = {}
            for kind in (SECCOMP, SELINUX):
                winner = _winner(pod, entries, kind, f"container {name!r}")
                if winner is None or winner.value is None:
                    continue
                if _has(_dict(context), kind):
                    pod.warn(
                        f"spo: binding {winner.binding!r} not applied: container {name!r} "
                        f"already has a {_NOUN[kind]}"
                    )
                    continue
                additions[kind] = winner.value
                bound_kinds.add(kind)
            if additions:
                pod.ops.extend(
                    _set_ops(f"/spec/{list_name}/{index}/securityContext", context, additions)
                )
    _bind_pod_level(pod, images.get(WILDCARD) or (), bound_kinds)


def _bind_pod_level(pod: _Pod, entries: tuple[Entry, ...], bound_kinds: set[str]) -> None:
    context = pod.spec.get("securityContext")
    additions: dict[str, str] = {}
    for kind in (SECCOMP, SELINUX):
        winner = _winner(pod, entries, kind, "the pod")
        if winner is None or winner.value is None or kind in bound_kinds:
            continue
        if _has(_dict(context), kind):
            pod.warn(
                f"spo: binding {winner.binding!r} not applied: the pod already has a {_NOUN[kind]}"
            )
            continue
        additions[kind] = winner.value
    if additions:
        pod.ops.extend(_set_ops("/spec/securityContext", context, additions))


def _matches(spec: dict[str, Any], images: dict[str, tuple[Entry, ...]]) -> bool:
    if WILDCARD in images:
        return True
    return any(
        isinstance(c, dict) and c.get("image") in images
        for list_name in _CONTAINER_LISTS
        for c in spec.get(list_name) or []
    )


def capped(warnings: list[str], kind: str = "binding") -> list[str] | None:
    """At most ``MAX_WARNINGS`` short warnings: the API server truncates long or many ones."""
    if not warnings:
        return None
    shown = [
        w if len(w) <= MAX_WARNING_CHARS else w[: MAX_WARNING_CHARS - 3] + "..." for w in warnings
    ]
    if len(shown) > MAX_WARNINGS:
        shown = [
            *shown[: MAX_WARNINGS - 1],
            f"spo: {len(shown) - MAX_WARNINGS + 1} more {kind} warnings",
        ]
    return shown


def is_pod_create(request: AdmissionRequest) -> bool:
    """A CREATE of a pod itself (not of one of its subresources)."""
    resource = request.resource
    return (
        request.operation == "CREATE"
        and (resource is None or (resource.group == "" and resource.resource == "pods"))
        and not request.subResource
    )


def admit(
    review: AdmissionReviewRequest, table: BindingTable, *, table_loaded: bool = True
) -> AdmissionReviewResponse:
    """The answer to one AdmissionReview: always allowed, with a JSONPatch when a binding
    applies."""
    request = review.request
    response = AdmissionResponse(uid=request.uid, allowed=True)
    if not is_pod_create(request) or not isinstance(request.object, dict):
        return AdmissionReviewResponse(response=response)
    metadata = _dict(request.object.get("metadata"))
    namespace = request.namespace or str(metadata.get("namespace") or "")
    if not table_loaded:
        response.warnings = [
            "spo: the binding table is not available yet; no profile binding was applied"
        ]
        return AdmissionReviewResponse(response=response)
    images = table.of(namespace)
    spec = _dict(request.object.get("spec"))
    if not images or not _matches(spec, images):
        return AdmissionReviewResponse(response=response)
    pod = _Pod(spec)
    if _dict(spec.get("os")).get("name") == "windows":
        pod.warn("spo: profile bindings are not applied to Windows pods")
    else:
        _bind(pod, images)
    if pod.ops:
        encoded = json.dumps(pod.ops, separators=(",", ":")).encode()
        response.patchType = "JSONPatch"
        response.patch = base64.b64encode(encoded).decode()
        log.debug(
            "pod bound: %d patch operations",
            len(pod.ops),
            extra=about(namespace=namespace, name=metadata.get("name")),
        )
    response.warnings = capped(pod.warnings)
    return AdmissionReviewResponse(response=response)
