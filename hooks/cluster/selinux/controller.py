"""The SelinuxProfile and RawSelinuxProfile CompositeControllers: customize, sync and finalize.

Pure functions, one set for both kinds (``kind`` says which). The one child is
the ConfigMap with the profile's CIL (``policy.cil``), which nodesync hands to
selinuxd on every node; the status is aggregated from the node statuses.

- A profile that is rejected (a bad name, a denied rule, a missing or cyclic
  inherited profile, CIL that would leave its block) gets an Error status that
  names the offending rule, and a ConfigMap the nodes already have is returned
  unchanged: an installed policy stays installed.
- SELinux is switched on by the SecurityProfilesOperatorDaemon's
  ``enableSelinux``. While it is off (or there is no daemon object) a valid
  profile is Pending with the reason ``SelinuxDisabled``: nothing is wrong with
  the profile, it waits for SELinux to be enabled, and a ConfigMap already there
  is kept. An invalid profile is still reported as an Error.
- Finalize keeps the ConfigMap while pods run as the profile's type (and, for a
  SelinuxProfile, while another enabled SelinuxProfile of the namespace inherits
  it); then it drops the ConfigMap so that the nodes remove the policy, and
  waits until no node reports it Installed or Terminating. With SELinux off no
  node will remove anything, so it does not wait for them.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from hooks.api import rawselinuxprofile as raw_api
from hooks.api import selinuxprofile as api
from hooks.api import selinuxrules as validation
from hooks.api import spod as spod_api
from hooks.api.base import Object
from hooks.api.configmaps import SELINUX_KEY, configmap_metadata, configmap_name, spec_too_large
from hooks.api.names import name_problem
from hooks.api.nodestatus import KIND as NODE_STATUS_KIND
from hooks.api.nodestatuslabels import PROFILE_ID_LABEL, profile_id
from hooks.api.objectshapes import shown
from hooks.api.problems import ProfileProblem
from hooks.api.profilerecording import PROFILE_PARTIAL_LABEL
from hooks.api.profilestate import ProfileState
from hooks.api.spod import OPERATOR_NAMESPACE
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
from hooks.cluster.profilestatus import (
    NodeReport,
    Outcome,
    across_nodes,
    conditions,
    node_statuses,
    of_state,
)
from hooks.cluster.selinux import settings as selinux_settings
from hooks.cluster.selinux.settings import SelinuxSettings
from hooks.cluster.selinux.translation import translate
from hooks.cluster.workloads import active, uses_selinux_type
from hooks.logs import about

log = logging.getLogger(__name__)

SELINUX_KIND = api.KIND.kind
RAW_KIND = raw_api.KIND.kind
SELINUX_DISABLED = "SelinuxDisabled"
FINALIZE_RESYNC_SECONDS = 10.0
NODE_STATUSES = group_key(NODE_STATUS_KIND.kind, NODE_STATUS_KIND.api_version)
SELINUX_PROFILES = group_key(api.KIND.kind, api.KIND.api_version)
DAEMONS = group_key(spod_api.KIND.kind, spod_api.KIND.api_version)
_MODELS: dict[str, type[api.SelinuxProfile] | type[raw_api.RawSelinuxProfile]] = {
    SELINUX_KIND: api.SelinuxProfile,
    RAW_KIND: raw_api.RawSelinuxProfile,
}
_INVALID = {SELINUX_KIND: validation.INVALID, RAW_KIND: validation.INVALID_RAW}
_ON_NODES = (ProfileState.INSTALLED, ProfileState.TERMINATING)
_SHOWN = 5


def customize(request: CustomizeRequest, kind: str = SELINUX_KIND) -> CustomizeResponse:
    """Ask for the profile's node statuses, the pods of its namespace, the daemon object and,
    for a SelinuxProfile, the SelinuxProfiles of its namespace (what it inherits, and what
    inherits it)."""
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if name_problem(name, namespace):
        return CustomizeResponse()  # the sync hook answers with the Error; it needs nothing related
    rules = [
        ResourceRule(
            apiVersion=NODE_STATUS_KIND.api_version,
            resource=NODE_STATUS_KIND.plural,
            namespace=namespace,
            labelSelector=LabelSelector(matchLabels={PROFILE_ID_LABEL: profile_id(kind, name)}),
        ),
        podusage.rule(request.parent, kind, name),
        ResourceRule(
            apiVersion=spod_api.KIND.api_version,
            resource=spod_api.KIND.plural,
            namespace=OPERATOR_NAMESPACE,
            names=[spod_api.DEFAULT_SPOD_NAME],
        ),
    ]
    if kind == SELINUX_KIND:
        rules.append(
            ResourceRule(
                apiVersion=api.KIND.api_version, resource=api.KIND.plural, namespace=namespace
            )
        )
    return CustomizeResponse(relatedResources=rules)


def sync(request: SyncRequest, now: str, kind: str = SELINUX_KIND) -> SyncResponse:
    """The desired ConfigMap and the observed status of one SelinuxProfile or RawSelinuxProfile
    (also finalize: ``request.finalizing``)."""
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    bad_name = name_problem(name, namespace)
    usage = None if bad_name else api.policy_usage(name, namespace)
    observed = child_named(request, CONFIGMAP, configmap_name(kind, name))
    workloads = active(
        request.related_of(POD), lambda pod: usage is not None and uses_selinux_type(pod, usage)
    )
    settings = selinux_settings.from_daemons(request.related_of(DAEMONS))
    resync: float | None = None
    finalized: bool | None = None

    if request.finalizing:
        outcome, children, finalized = _finalize(request, kind, settings, observed, workloads)
        resync = None if finalized else FINALIZE_RESYNC_SECONDS
    else:
        try:
            if bad_name:
                raise ProfileProblem(_INVALID[kind], bad_name)
            outcome, children = _desired(request, kind, settings, observed)
        except ProfileProblem as problem:
            log.warning(
                "SELinux profile rejected: %s",
                problem.message,
                extra=about(namespace=namespace, name=name, kind=kind, reason=problem.reason),
            )
            outcome = of_state(ProfileState.ERROR, problem.message, reason=problem.reason)
            children = [] if bad_name else _kept(observed)

    if resync is None:
        resync = missing_child_resync(request, children)
    observed_status = request.parent.get("status") or {}
    status = api.SelinuxProfileStatus(
        status=outcome.state,
        usage=usage,
        activeWorkloads=workloads or None,
        conditions=conditions(outcome, observed_status.get("conditions"), now),
    )
    return SyncResponse(
        status=status.to_wire(), children=children, resyncAfterSeconds=resync, finalized=finalized
    )


def _desired(
    request: SyncRequest, kind: str, settings: SelinuxSettings, observed: Object | None
) -> tuple[Outcome, list[Object]]:
    profile = _parse(request.parent, kind)
    if profile.spec.disabled:
        return of_state(ProfileState.DISABLED, "the profile is disabled"), []
    if PROFILE_PARTIAL_LABEL in (profile.metadata.labels or {}):
        return of_state(
            ProfileState.PARTIAL, "a partial recorded profile: it is merged, not installed"
        ), []
    cil = translate(
        profile,
        siblings=ByName(request.related_of(SELINUX_PROFILES), api.SelinuxProfile, _not_too_large),
        allowed_system_profiles=settings.allowed_system_profiles,
    )
    if not settings.enabled:
        return of_state(
            ProfileState.PENDING, settings.disabled_message(), reason=SELINUX_DISABLED
        ), _kept(observed)
    configmap: Object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": configmap_metadata(kind, profile.namespace, profile.name),
        "data": {SELINUX_KEY: cil},
    }
    return across_nodes(_node_reports(request, kind, profile.name, profile.namespace)), [configmap]


def _finalize(
    request: SyncRequest,
    kind: str,
    settings: SelinuxSettings,
    observed: Object | None,
    workloads: list[str],
) -> tuple[Outcome, list[Object], bool]:
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if workloads:
        message = f"waiting for {_count(len(workloads), 'pod')} to stop using the policy"
        return of_state(ProfileState.TERMINATING, message), _kept(observed), False
    inheritors = _inheritors(request, name) if kind == SELINUX_KIND else []
    if inheritors:
        message = f"waiting for the SelinuxProfiles that inherit it to go: {_listed(inheritors)}"
        return of_state(ProfileState.TERMINATING, message), _kept(observed), False
    remaining = (
        [r.nodeName for r in _node_reports(request, kind, name, namespace) if r.status in _ON_NODES]
        if settings.enabled
        else []
    )
    if remaining:
        message = (
            f"no pod uses the policy; waiting for {_count(len(remaining), 'node')} to remove it: "
            f"{_listed(remaining)}"
        )
        return of_state(ProfileState.TERMINATING, message), [], False
    return (
        of_state(ProfileState.TERMINATING, "no pod uses the policy and no node has it installed"),
        [],
        True,
    )


def _not_too_large(raw: Object) -> None:
    problem = spec_too_large(raw)
    if problem:
        name = (raw.get("metadata") or {}).get("name")
        raise ProfileProblem(validation.TOO_LARGE, f"SelinuxProfile {shown(name)}: {problem}")


def _parse(raw: Object, kind: str) -> api.SelinuxProfile | raw_api.RawSelinuxProfile:
    problem = spec_too_large(raw)
    if problem:
        raise ProfileProblem(validation.TOO_LARGE, problem)
    try:
        return _MODELS[kind].model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ProfileProblem(_INVALID[kind], f"{field}: {first['msg']}") from error


def _node_reports(request: SyncRequest, kind: str, name: str, namespace: str) -> list[NodeReport]:
    return node_statuses(request.related_of(NODE_STATUSES), profile_id(kind, name), namespace)


def _inheritors(request: SyncRequest, name: str) -> list[str]:
    """The enabled SelinuxProfiles of the namespace, not being deleted, that inherit ``name``."""
    found = []
    for raw in request.related_of(SELINUX_PROFILES):
        meta: Any = raw.get("metadata") or {}
        spec: Any = raw.get("spec") or {}
        if (
            meta.get("name") == name
            or meta.get("deletionTimestamp")
            or spec.get("disabled") is True
        ):
            continue
        refs = spec.get("inherit") or []
        if any(
            isinstance(r, dict)
            and r.get("kind") == api.PolicyKind.SELINUX_PROFILE
            and r.get("name") == name
            for r in refs
        ):
            found.append(str(meta.get("name", "")))
    return sorted(found)


def _kept(observed: Object | None) -> list[Object]:
    """The observed child as an answer that changes nothing (none when there is none)."""
    return [unchanged(observed, ("data",))] if observed is not None else []


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
