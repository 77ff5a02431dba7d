"""The SeccompProfile CompositeController: customize, sync and finalize, as pure functions.

The one child is the ConfigMap nodesync installs on every node. An invalid
profile never takes away a ConfigMap the nodes already have: the observed one is
returned unchanged and the status says what is wrong. A valid profile with a
warning (syscalls its architectures lack) has it in its condition's message and
in its ConfigMap's warning annotation, which nodesync copies into the Event it
emits on saving the profile (``hooks.api.configmaps``).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pydantic import ValidationError

from hooks.api import GROUP
from hooks.api import seccompprofile as api
from hooks.api import spod as spod_api
from hooks.api.base import Object
from hooks.api.configmaps import (
    SECCOMP_KEY,
    SECCOMP_KIND,
    configmap_metadata,
    configmap_name,
    spec_too_large,
)
from hooks.api.names import name_problem
from hooks.api.nodestatus import KIND as NODE_STATUS_KIND
from hooks.api.nodestatuslabels import PROFILE_ID_LABEL, profile_id
from hooks.api.objectshapes import shown
from hooks.api.problems import ProfileProblem
from hooks.api.profilerecording import PROFILE_PARTIAL_LABEL
from hooks.api.profilestate import ProfileState
from hooks.api.seccompprofile import localhost_profile
from hooks.cluster import podusage
from hooks.cluster.contract import (
    CONFIGMAP,
    POD,
    ByName,
    CustomizeRequest,
    CustomizeResponse,
    LabelSelector,
    ResourceRule,
    SyncRequest,
    SyncResponse,
    child_named,
    group_key,
    missing_child_resync,
    unchanged,
)
from hooks.cluster.profilestatus import Outcome, across_nodes, conditions, node_statuses, of_state
from hooks.cluster.seccomp import merging, policy, validation
from hooks.cluster.seccomp.oci import encode, runtime_profile
from hooks.cluster.workloads import active, uses_seccomp_profile
from hooks.logs import about

log = logging.getLogger(__name__)

KUBELET_SECCOMP_ROOT = "/var/lib/kubelet/seccomp"
FINALIZE_RESYNC_SECONDS = 10.0
NODE_STATUSES = group_key(NODE_STATUS_KIND.kind, NODE_STATUS_KIND.api_version)
SECCOMP_PROFILES = group_key(api.KIND.kind, api.KIND.api_version)
SECCOMP_PROFILES_ALPHA = group_key(api.KIND.kind, f"{GROUP}/v1alpha1")
DAEMONS = group_key(spod_api.KIND.kind, spod_api.KIND.api_version)
POLICY_REASONS = (policy.DISALLOWED_SYSCALLS, policy.DISALLOWED_ACTION)


def customize(request: CustomizeRequest) -> CustomizeResponse:
    """Ask for the profile's node statuses, the pods that use it (``hooks.cluster.podusage``)
    and, when it has a base profile, the profiles of its namespace (a chain of bases can only
    be followed there)."""
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if name_problem(name, namespace):
        return CustomizeResponse()  # the sync hook answers with the Error; it needs nothing related
    rules = [
        ResourceRule(
            apiVersion=NODE_STATUS_KIND.api_version,
            resource=NODE_STATUS_KIND.plural,
            namespace=namespace,
            labelSelector=LabelSelector(
                matchLabels={PROFILE_ID_LABEL: profile_id(SECCOMP_KIND, name)}
            ),
        ),
        podusage.rule(request.parent, SECCOMP_KIND, name),
    ]
    if (request.parent.get("spec") or {}).get("baseProfileName"):
        rules.append(
            ResourceRule(
                apiVersion=api.KIND.api_version, resource=api.KIND.plural, namespace=namespace
            )
        )
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
    """The desired ConfigMap and the observed status of one SeccompProfile (also finalize).

    Metacontroller also calls finalize on a profile that is not being deleted but left the
    controller's ``parentResource.labelSelector`` (a profile labelled
    ``spo.x-k8s.io/operator-profile`` moves to operator-profile-controller): that profile
    is handed over as a sync leaves it, ConfigMap and status unchanged, and finalized."""
    meta = request.parent.get("metadata") or {}
    if request.finalizing and not meta.get("deletionTimestamp"):
        handed_over = sync(request.model_copy(update={"finalizing": False}), now)
        return handed_over.model_copy(update={"finalized": True, "resyncAfterSeconds": None})
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    bad_name = name_problem(name, namespace)
    observed = child_named(request, CONFIGMAP, configmap_name(SECCOMP_KIND, name))
    pods = request.related_of(POD)
    workloads = active(
        pods, lambda pod: uses_seccomp_profile(pod, localhost_profile(namespace, name))
    )
    children: list[Object] = []
    warnings: list[str] = []
    finalized: bool | None = None
    resync: float | None = None

    if request.finalizing:
        if workloads:
            outcome = of_state(
                ProfileState.TERMINATING,
                f"waiting for {len(workloads)} pods to stop using the profile",
            )
            children = [unchanged(observed, ("data",))] if observed else []
            resync = FINALIZE_RESYNC_SECONDS
            finalized = False
        else:
            outcome = of_state(
                ProfileState.TERMINATING, "no pod uses the profile; removing it from the nodes"
            )
            finalized = True
    else:
        try:
            if bad_name:
                raise ProfileProblem(validation.INVALID, bad_name)
            profile = _parse(request.parent)
            outcome, children, warnings = _desired(request, profile, namespace, name)
        except ProfileProblem as problem:
            log.warning(
                "seccomp profile rejected: %s",
                problem.message,
                extra=about(namespace=namespace, name=name, reason=problem.reason),
            )
            outcome = of_state(ProfileState.ERROR, problem.message, reason=problem.reason)
            # A mistake keeps what the nodes have; a profile the operator forbids must leave them.
            # A name that makes no valid path or child name gets nothing at all.
            keep = observed and problem.reason not in POLICY_REASONS and not bad_name
            children = [unchanged(observed, ("data",))] if keep and observed else []

    if resync is None:
        resync = missing_child_resync(request, children)
    observed_status = request.parent.get("status") or {}
    on_node = None if bad_name else localhost_profile(namespace, name)
    if warnings:
        outcome = replace(outcome, message=f"{outcome.message}; warning: {'; '.join(warnings)}")
    status = api.SeccompProfileStatus(
        status=outcome.state,
        path=f"{KUBELET_SECCOMP_ROOT}/{on_node}" if on_node else None,
        localhostProfile=on_node,
        activeWorkloads=workloads or None,
        conditions=conditions(outcome, observed_status.get("conditions"), now),
    )
    return SyncResponse(
        status=status.to_wire(), children=children, resyncAfterSeconds=resync, finalized=finalized
    )


def _not_too_large(raw: Object) -> None:
    problem = spec_too_large(raw)
    if problem:
        name = (raw.get("metadata") or {}).get("name")
        raise ProfileProblem(validation.TOO_LARGE, f"SeccompProfile {shown(name)}: {problem}")


def _parse(raw: Object) -> api.SeccompProfile:
    problem = spec_too_large(raw)
    if problem:
        raise ProfileProblem(validation.TOO_LARGE, problem)
    try:
        return api.SeccompProfile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ProfileProblem(validation.INVALID, f"{field}: {first['msg']}") from error


def _desired(
    request: SyncRequest, profile: api.SeccompProfile, namespace: str, name: str
) -> tuple[Outcome, list[Object], list[str]]:
    """The outcome, the ConfigMap and the warnings (names of the profile's own rules that its
    architectures lack but others have: written as given, the runtime leaves them out; the
    ConfigMap carries them to the nodes in its warning annotation)."""
    if profile.spec.disabled:
        return of_state(ProfileState.DISABLED, "the profile is disabled"), [], []
    if PROFILE_PARTIAL_LABEL in (profile.metadata.labels or {}):
        return (
            of_state(
                ProfileState.PARTIAL, "a partial recorded profile: it is merged, not installed"
            ),
            [],
            [],
        )
    validation.check_name(name)
    warnings = validation.check_spec(profile.spec)
    siblings = request.related_of(SECCOMP_PROFILES) + request.related_of(SECCOMP_PROFILES_ALPHA)
    chain = merging.base_chain(profile, ByName(siblings, api.SeccompProfile, _not_too_large))
    validation.check_bases(chain)
    merged = merging.merge(profile.spec, [base.spec for base in chain])
    policy.check(merged, policy.from_daemons(request.related_of(DAEMONS)))
    content = encode(runtime_profile(merged))
    validation.check_size(content)
    configmap: Object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": configmap_metadata(SECCOMP_KIND, namespace, name, "; ".join(warnings)),
        "data": {SECCOMP_KEY: content},
    }
    statuses = node_statuses(
        request.related_of(NODE_STATUSES), profile_id(SECCOMP_KIND, name), namespace
    )
    return across_nodes(statuses), [configmap], warnings
