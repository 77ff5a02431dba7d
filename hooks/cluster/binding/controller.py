"""The ProfileBinding CompositeController: status and finalize, as pure functions. No children.

``status.activeWorkloads`` lists the pods of the binding's namespace, not
finished, that run the bound image (any image for ``*``) under the bound
profile, as ``<namespace>/<pod>`` like the Go operator wrote them. The
finalize hook holds the binding while that list is not empty. The profile
itself is held by its own controller while pods use it (the SeccompProfile
finalize hook waits for the pods that run under it).

The Ready condition says whether the binding can take effect: True when the
profile is Installed, False with ``ProfileNotFound``, ``ProfileNotInstalled``
or ``InvalidProfileBinding`` otherwise (a binding is still kept: the webhook
skips it with a warning).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from hooks.api import profilebinding as api
from hooks.api import seccompprofile as seccomp_api
from hooks.api import selinuxprofile as selinux_api
from hooks.api.base import Condition
from hooks.api.names import is_subdomain, name_problem
from hooks.api.objectshapes import shown
from hooks.api.profilestate import ProfileState
from hooks.api.seccompprofile import localhost_profile
from hooks.cluster import podusage
from hooks.cluster.binding.table import MISSING, SECCOMP, WILDCARD, Entry
from hooks.cluster.contract import (
    POD,
    CustomizeRequest,
    CustomizeResponse,
    ResourceRule,
    SyncRequest,
    SyncResponse,
    group_key,
)
from hooks.cluster.profilestatus import ready_conditions
from hooks.logs import about

log = logging.getLogger(__name__)

BOUND = "Bound"
PROFILE_NOT_FOUND = "ProfileNotFound"
PROFILE_NOT_INSTALLED = "ProfileNotInstalled"
INVALID = "InvalidProfileBinding"
DELETING = "Deleting"
FINALIZE_RESYNC_SECONDS = 10.0
SECCOMP_PROFILES = group_key(seccomp_api.KIND.kind, seccomp_api.KIND.api_version)
SELINUX_PROFILES = group_key(selinux_api.KIND.kind, selinux_api.KIND.api_version)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_FINISHED = ("Succeeded", "Failed")


def customize(request: CustomizeRequest) -> CustomizeResponse:
    """The pods under the bound profile (every pod of the namespace while the binding is being
    deleted: ``hooks.cluster.podusage``) and, when the binding is readable, its profile."""
    meta = request.parent.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    rules: list[ResourceRule] = []
    ref = (request.parent.get("spec") or {}).get("profileRef") or {}
    if not isinstance(ref, dict) or name_problem(meta.get("name"), namespace):
        return CustomizeResponse()  # the sync hook answers with the Error
    kind = {
        SECCOMP: seccomp_api.KIND,
        api.ProfileBindingKind.SELINUX_PROFILE.value: selinux_api.KIND,
    }.get(str(ref.get("kind")))
    if kind is not None and isinstance(ref.get("name"), str) and ref["name"]:
        # The pods under the bound profile: those the binding may have given it to.
        rules.append(podusage.rule(request.parent, kind.kind, ref["name"]))
        rules.append(
            ResourceRule(
                apiVersion=kind.api_version,
                resource=kind.plural,
                namespace=namespace,
                names=[ref["name"]],
            )
        )
    elif meta.get("deletionTimestamp"):
        rules.append(podusage.every_pod(namespace))
    return CustomizeResponse(relatedResources=rules)


def _profile(request: SyncRequest, binding: api.ProfileBinding) -> Entry:
    """The bound profile as the binding table sees it (state and the value a pod gets)."""
    ref = binding.spec.profileRef
    key = (
        SECCOMP_PROFILES if ref.kind is api.ProfileBindingKind.SECCOMP_PROFILE else SELINUX_PROFILES
    )
    found = next(
        (p for p in request.related_of(key) if (p.get("metadata") or {}).get("name") == ref.name),
        None,
    )
    if ref.kind is api.ProfileBindingKind.SECCOMP_PROFILE:
        value = localhost_profile(binding.namespace, ref.name)
        field = "localhostProfile"
    else:
        value = selinux_api.policy_usage(ref.name, binding.namespace)
        field = "usage"
    if found is None:
        return Entry(binding.name, ref.kind.value, ref.name, MISSING, value)
    status = found.get("status") if isinstance(found.get("status"), dict) else None
    state = str((status or {}).get("status") or ProfileState.PENDING.value)
    return Entry(
        binding.name, ref.kind.value, ref.name, state, str((status or {}).get(field) or value)
    )


def _runs_under(pod: dict[str, Any], image: str, kind: str, value: str) -> bool:
    """Whether a container of ``pod`` running ``image`` (any for ``*``) runs under the profile."""
    spec = pod.get("spec") or {}
    pod_context = spec.get("securityContext") or {}
    for list_name in _CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            if image != WILDCARD and container.get("image") != image:
                continue
            context = container.get("securityContext") or {}
            if kind == SECCOMP:
                profile = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
                if profile.get("type") == "Localhost" and profile.get("localhostProfile") == value:
                    return True
            else:
                selinux_type = (context.get("seLinuxOptions") or {}).get("type") or (
                    pod_context.get("seLinuxOptions") or {}
                ).get("type")
                if selinux_type == value:
                    return True
    return False


def active_workloads(
    pods: list[dict[str, Any]], binding: api.ProfileBinding, value: str
) -> list[str]:
    """``<namespace>/<pod>`` of the unfinished pods that got the bound profile, sorted."""
    found = set()
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (pod.get("status") or {}).get("phase") in _FINISHED:
            continue
        if meta.get("namespace", binding.namespace) != binding.namespace:
            continue
        if _runs_under(pod, binding.spec.image, binding.spec.profileRef.kind.value, value):
            found.add(f"{binding.namespace}/{meta.get('name', '')}")
    return sorted(found)


def _condition(status: str, reason: str, message: str, observed: Any, now: str) -> Condition:
    return ready_conditions(status == "True", reason, message, observed, now)[0]


def sync(request: SyncRequest, now: str) -> SyncResponse:
    """The status of one ProfileBinding; also its finalize hook."""
    meta = request.parent.get("metadata") or {}
    observed = (request.parent.get("status") or {}).get("conditions")
    try:
        binding = api.ProfileBinding.model_validate(request.parent)
        message = name_problem(binding.name, binding.namespace)
        if not message and not is_subdomain(binding.spec.profileRef.name):
            message = (
                f"spec.profileRef.name: {shown(binding.spec.profileRef.name)} is not a DNS-1123 "
                "subdomain"
            )
    except ValidationError as error:
        first = error.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    if message:
        log.warning(
            "profile binding rejected: %s",
            message,
            extra=about(namespace=meta.get("namespace"), name=meta.get("name"), reason=INVALID),
        )
        status = api.ProfileBindingStatus(
            conditions=[_condition("False", INVALID, message, observed, now)]
        )
        return SyncResponse(status=status.to_wire(), finalized=True if request.finalizing else None)

    profile = _profile(request, binding)
    assert profile.value is not None  # always computed for a readable binding
    workloads = active_workloads(request.related_of(POD), binding, profile.value)
    finalized: bool | None = None
    resync: float | None = None
    target = f"{profile.kind} {profile.profile!r}"
    if request.finalizing:
        finalized = not workloads
        resync = None if finalized else FINALIZE_RESYNC_SECONDS
        message = (
            f"waiting for {len(workloads)} pods to stop using {target}"
            if workloads
            else "no pod uses the binding"
        )
        condition = _condition("False", DELETING, message, observed, now)
    elif profile.state == MISSING:
        condition = _condition(
            "False", PROFILE_NOT_FOUND, f"{target} does not exist", observed, now
        )
    elif profile.state != ProfileState.INSTALLED.value:
        message = (
            f"{target} is not installed yet (status {profile.state}); pods are not bound to it"
        )
        condition = _condition("False", PROFILE_NOT_INSTALLED, message, observed, now)
    else:
        pods = (
            "new pods without a pod-level profile"
            if binding.spec.image == WILDCARD
            else f"new containers of image {binding.spec.image}"
        )
        condition = _condition("True", BOUND, f"{pods} get {target}", observed, now)
    status = api.ProfileBindingStatus(activeWorkloads=workloads or None, conditions=[condition])
    return SyncResponse(status=status.to_wire(), resyncAfterSeconds=resync, finalized=finalized)
