"""The SeccompProfile CompositeController: customize, sync and finalize, as pure functions.

The one child is the ConfigMap nodesync installs on every node. An invalid
profile never takes away a ConfigMap the nodes already have: the observed one
is returned unchanged and the status says what is wrong.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from hooks.api import GROUP
from hooks.api import seccompprofile as api
from hooks.api import spod as spod_api
from hooks.api.configmaps import SECCOMP_KEY, SECCOMP_KIND, configmap_metadata, configmap_name
from hooks.api.nodestatus import KIND as NODE_STATUS_KIND
from hooks.api.nodestatus import PROFILE_ID_LABEL, profile_id
from hooks.api.profilerecording import PROFILE_PARTIAL_LABEL
from hooks.api.profilestate import ProfileState
from hooks.contract import (
    CONFIGMAP,
    POD,
    ByName,
    CustomizeRequest,
    CustomizeResponse,
    LabelSelector,
    Object,
    ResourceRule,
    SyncRequest,
    SyncResponse,
    child_named,
    group_key,
    missing_child_resync,
    unchanged,
)
from hooks.logs import about
from hooks.problems import ProfileProblem
from hooks.profilestatus import Outcome, across_nodes, conditions, node_statuses, of_state
from hooks.seccomp import merging, policy, validation
from hooks.seccomp.oci import encode, runtime_profile
from hooks.workloads import active, uses_seccomp_profile

log = logging.getLogger(__name__)

KUBELET_SECCOMP_ROOT = "/var/lib/kubelet/seccomp"
FINALIZE_RESYNC_SECONDS = 10.0
NODE_STATUSES = group_key(NODE_STATUS_KIND.kind, NODE_STATUS_KIND.api_version)
SECCOMP_PROFILES = group_key(api.KIND.kind, api.KIND.api_version)
SECCOMP_PROFILES_ALPHA = group_key(api.KIND.kind, f"{GROUP}/v1alpha1")
DAEMONS = group_key(spod_api.KIND.kind, spod_api.KIND.api_version)
POLICY_REASONS = (policy.DISALLOWED_SYSCALLS, policy.DISALLOWED_ACTION)


def localhost_profile(namespace: str, name: str) -> str:
    """What a pod puts in ``seccompProfile.localhostProfile`` for this profile."""
    return f"operator/{namespace}/{name}.json"


def customize(request: CustomizeRequest) -> CustomizeResponse:
    """Ask for the profile's node statuses, the pods of its namespace and, when it has a base
    profile, the profiles of its namespace (a chain of bases can only be followed there)."""
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    rules = [
        ResourceRule(
            apiVersion=NODE_STATUS_KIND.api_version,
            resource=NODE_STATUS_KIND.plural,
            namespace=namespace,
            labelSelector=LabelSelector(matchLabels={PROFILE_ID_LABEL: profile_id(SECCOMP_KIND, name)}),
        ),
        ResourceRule(apiVersion="v1", resource="pods", namespace=namespace),
    ]
    if (request.parent.get("spec") or {}).get("baseProfileName"):
        rules.append(ResourceRule(apiVersion=api.KIND.api_version, resource=api.KIND.plural, namespace=namespace))
    rules.append(
        ResourceRule(
            apiVersion=spod_api.KIND.api_version,
            resource=spod_api.KIND.plural,
            namespace=spod_api.OPERATOR_NAMESPACE,
            names=[spod_api.DEFAULT_SPOD_NAME],
        )
    )
    return CustomizeResponse(relatedResources=rules)


def sync(request: SyncRequest, now: str) -> SyncResponse:
    """The desired ConfigMap and the observed status of one SeccompProfile (also finalize)."""
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    observed = child_named(request, CONFIGMAP, configmap_name(SECCOMP_KIND, name))
    pods = request.related_of(POD)
    workloads = active(pods, lambda pod: uses_seccomp_profile(pod, localhost_profile(namespace, name)))
    children: list[Object] = []
    finalized: bool | None = None
    resync: float | None = None

    if request.finalizing:
        if workloads:
            outcome = of_state(
                ProfileState.TERMINATING, f"waiting for {len(workloads)} pods to stop using the profile"
            )
            children = [unchanged(observed, ('data',))] if observed else []
            resync = FINALIZE_RESYNC_SECONDS
            finalized = False
        else:
            outcome = of_state(ProfileState.TERMINATING, "no pod uses the profile; removing it from the nodes")
            finalized = True
    else:
        try:
            profile = _parse(request.parent)
            outcome, children = _desired(request, profile, namespace, name)
        except ProfileProblem as problem:
            log.warning(
                "seccomp profile rejected: %s",
                problem.message,
                extra=about(namespace=namespace, name=name, reason=problem.reason),
            )
            outcome = of_state(ProfileState.ERROR, problem.message, reason=problem.reason)
            # A mistake keeps what the nodes have; a profile the operator forbids must leave them.
            keep = observed and problem.reason not in POLICY_REASONS
            children = [unchanged(observed, ('data',))] if keep and observed else []

    if resync is None:
        resync = missing_child_resync(request, children)
    observed_status = request.parent.get("status") or {}
    status = api.SeccompProfileStatus(
        status=outcome.state,
        path=f"{KUBELET_SECCOMP_ROOT}/{localhost_profile(namespace, name)}",
        localhostProfile=localhost_profile(namespace, name),
        activeWorkloads=workloads or None,
        conditions=conditions(outcome, observed_status.get("conditions"), now),
    )
    return SyncResponse(status=status.to_wire(), children=children, resyncAfterSeconds=resync, finalized=finalized)


def _parse(raw: Object) -> api.SeccompProfile:
    try:
        return api.SeccompProfile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ProfileProblem(validation.INVALID, f"{field}: {first['msg']}") from error


def _desired(request: SyncRequest, profile: api.SeccompProfile, namespace: str, name: str) -> tuple[Outcome, list[Object]]:
    if profile.spec.disabled:
        return of_state(ProfileState.DISABLED, "the profile is disabled"), []
    if PROFILE_PARTIAL_LABEL in (profile.metadata.labels or {}):
        return of_state(ProfileState.PARTIAL, "a partial recorded profile: it is merged, not installed"), []
    validation.check_name(name)
    validation.check_spec(profile.spec)
    siblings = request.related_of(SECCOMP_PROFILES) + request.related_of(SECCOMP_PROFILES_ALPHA)
    chain = merging.base_chain(profile, ByName(siblings, api.SeccompProfile))
    for base in chain:
        try:
            validation.check_spec(base.spec)
        except ProfileProblem as problem:
            raise ProfileProblem("InvalidBaseProfile", f"base profile {base.name!r}: {problem.message}") from problem
    merged = merging.merge(profile.spec, [base.spec for base in chain])
    policy.check(merged, policy.from_daemons(request.related_of(DAEMONS)))
    content = encode(runtime_profile(merged))
    validation.check_size(content)
    configmap: Object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": configmap_metadata(SECCOMP_KIND, namespace, name),
        "data": {SECCOMP_KEY: content},
    }
    statuses = node_statuses(request.related_of(NODE_STATUSES), profile_id(SECCOMP_KIND, name), namespace)
    return across_nodes(statuses), [configmap]
