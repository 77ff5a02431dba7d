"""The SecurityProfilesOperatorDaemon CompositeController's sync hook, a pure function.

The children are nodesync's DaemonSet and, with ``enableLogEnricher``, the log
enricher's (see ``daemonset``); without it, Metacontroller deletes the log
enricher's. The status is the state of their rollouts together (see
``rollout``): RUNNING only when both run. An invalid spec never touches the
running DaemonSets: the observed ones are answered back as they were last
applied, and the status is ERROR with a condition naming the field.

The hook needs no related objects, so there is no customize hook.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from hooks.api.base import Condition, Object
from hooks.api.names import name_problem
from hooks.api.problems import ProfileProblem
from hooks.api.spod import QUANTITY_PATTERN, SecurityProfilesOperatorDaemon, SPODState, SPODStatus
from hooks.cluster.contract import SyncRequest, SyncResponse, group_key, last_applied, unchanged
from hooks.cluster.profilestatus import ready_conditions
from hooks.cluster.spod import daemonset, validation
from hooks.cluster.spod.rollout import Outcome, combine, of_daemonset, of_state
from hooks.logs import about

log = logging.getLogger(__name__)

DAEMONSET = group_key("DaemonSet", "apps/v1")


def sync(request: SyncRequest, now: str) -> SyncResponse:
    """The desired DaemonSets and the observed status of one spod."""
    meta = request.parent.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    observed = _observed_daemonsets(request, (name, daemonset.log_enricher_name(name)))
    try:
        bad_name = name_problem(name, namespace)
        if bad_name:
            raise ProfileProblem(validation.INVALID_NAME, bad_name)
        spod = _parse(request.parent)
        annotations = spod.metadata.annotations or {}
        validation.check(
            spod,
            {key: annotations[key] for key in daemonset.IMAGE_ANNOTATIONS if key in annotations},
        )
    except ProfileProblem as problem:
        log.warning(
            "spod rejected: %s",
            problem.message,
            extra=about(namespace=namespace, name=name, reason=problem.reason),
        )
        outcome = of_state(SPODState.ERROR, problem.message, reason=problem.reason)
        children = [unchanged(ds, ("spec",)) for ds in observed.values()]
    else:
        children = daemonset.daemonsets(spod)
        outcome = combine([_rollout(observed, desired) for desired in children])
    observed_status = request.parent.get("status") or {}
    status = SPODStatus(
        state=outcome.state,
        conditions=conditions(outcome, observed_status.get("conditions"), now),
    )
    return SyncResponse(status=status.to_wire(), children=children)


def conditions(outcome: Outcome, observed: Any, now: str) -> list[Condition]:
    """The Ready condition of a spod: true once its DaemonSets run everywhere."""
    return ready_conditions(
        outcome.state is SPODState.RUNNING, outcome.reason, outcome.message, observed, now
    )


def _parse(raw: Object) -> SecurityProfilesOperatorDaemon:
    try:
        return SecurityProfilesOperatorDaemon.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        reason = validation.INVALID_SPEC
        if len(location) > 1 and location[0] == "spec":
            reason = validation.REASON_OF_FIELD.get(location[1], reason)
        message = first["msg"]
        if (first.get("ctx") or {}).get("pattern") == QUANTITY_PATTERN:
            message = f"{first['input']!r} is not a quantity"
        raise ProfileProblem(reason, f"{_field(first['loc'])}: {message}") from error


def _field(location: tuple[int | str, ...]) -> str:
    """A pydantic error location spelled as the other messages spell fields: ``a.b[1].c``,
    ``limits[cpu]``."""
    text = ""
    previous: int | str = ""
    for part in location:
        if isinstance(part, int) or previous in ("requests", "limits", "annotations", "labels"):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
        previous = part
    return text


def _rollout(observed: dict[str, Object], desired: Object) -> Outcome:
    """The state of the rollout of one desired DaemonSet."""
    ds_name = desired["metadata"]["name"]
    seen = observed.get(ds_name)
    applied = last_applied(seen) if seen else None
    applied_spec = applied.get("spec") if applied else None
    return of_daemonset(
        seen, ds_name, applied_spec if isinstance(applied_spec, dict) else None, desired["spec"]
    )


def _observed_daemonsets(request: SyncRequest, names: tuple[str, ...]) -> dict[str, Object]:
    """The observed DaemonSets of the spod by name, in the order of ``names``."""
    found = {(ds.get("metadata") or {}).get("name"): ds for ds in request.children_of(DAEMONSET)}
    return {name: found[name] for name in names if name in found}
