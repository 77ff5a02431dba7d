"""A profile's status, computed from what the nodes report (their SecurityProfileNodeStatus).

Status is computed only from what the request shows, so the same request always
gives the same status; the one clock reading, a condition's
``lastTransitionTime``, is taken from the parent's observed status whenever the
condition did not change, and from ``now`` (passed in) only when it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hooks.api.base import Condition
from hooks.api.nodestatuslabels import PROFILE_ID_LABEL
from hooks.api.profilestate import ProfileState

READY = "Ready"

# Condition reasons for each state that is not an error of the profile itself.
_REASONS = {
    ProfileState.INSTALLED: "Available",
    ProfileState.PENDING: "Creating",
    ProfileState.IN_PROGRESS: "Creating",
    ProfileState.TERMINATING: "Deleting",
    ProfileState.DISABLED: "Disabled",
    ProfileState.PARTIAL: "Partial",
    ProfileState.ERROR: "InstallationFailed",
}


@dataclass(frozen=True)
class Outcome:
    """The state of a profile across nodes, with the reason and a message for the condition."""

    state: ProfileState
    reason: str
    message: str


@dataclass(frozen=True)
class NodeReport:
    """What one node said about one profile (the fields of a SecurityProfileNodeStatus we read)."""

    nodeName: str
    status: ProfileState
    message: str | None = None


_STATES = {state.value: state for state in ProfileState}


def _state(value: Any) -> ProfileState:
    # A state this version does not know is not a success.
    return (
        _STATES.get(value, ProfileState.PENDING) if isinstance(value, str) else ProfileState.PENDING
    )


def node_statuses(
    related: Iterable[dict[str, Any]], profile_id: str, namespace: str
) -> list[NodeReport]:
    """The node statuses of one profile among the related objects, ordered by node.

    Read straight from the dictionaries: a profile on a large cluster receives
    one object per node, and this runs on every sync.
    """
    found = []
    for raw in related:
        meta = raw.get("metadata") or {}
        if (meta.get("labels") or {}).get(PROFILE_ID_LABEL) != profile_id:
            continue
        if meta.get("namespace", "") not in ("", namespace) or not raw.get("nodeName"):
            continue
        found.append(
            NodeReport(str(raw["nodeName"]), _state(raw.get("status")), raw.get("message"))
        )
    return sorted(found, key=lambda s: s.nodeName)


def across_nodes(statuses: list[NodeReport]) -> Outcome:
    """Installed when every reporting node installed it, Error when one failed, else in progress.

    No report at all is Pending. Some nodes Installed and others not yet is
    InProgress (the Go operator reports the lowest state, Pending, here).

    The message names no count of nodes: each node's report is a sync, and a status that
    changed with every report would be one status write per profile and node (``kubectl get
    securityprofilenodestatuses`` lists the nodes' reports). It changes with the state, and for
    an error with the first failed node.
    """
    if not statuses:
        return Outcome(ProfileState.PENDING, "Creating", "waiting for nodes to report")
    failed = [s for s in statuses if s.status is ProfileState.ERROR]
    if failed:
        first = failed[0]
        where = first.nodeName if len(failed) == 1 else f"{first.nodeName} and other nodes"
        return Outcome(
            ProfileState.ERROR,
            "InstallationFailed",
            f"failed on {where}: {first.message or 'failed'}",
        )
    if any(s.status is ProfileState.TERMINATING for s in statuses):
        return Outcome(ProfileState.TERMINATING, "Deleting", "nodes are removing the profile")
    installed = [s for s in statuses if s.status is ProfileState.INSTALLED]
    if len(installed) == len(statuses):
        return Outcome(ProfileState.INSTALLED, "Available", "installed on every node that reported")
    if installed:
        return Outcome(
            ProfileState.IN_PROGRESS, "Creating", "installed on some nodes, pending on others"
        )
    return Outcome(ProfileState.PENDING, "Creating", "pending on the nodes that reported")


def of_state(state: ProfileState, message: str, reason: str | None = None) -> Outcome:
    return Outcome(state, reason or _REASONS[state], message)


def conditions(outcome: Outcome, observed: Any, now: str) -> list[Condition]:
    """The Ready condition of a profile: true once it is installed."""
    return ready_conditions(
        outcome.state is ProfileState.INSTALLED, outcome.reason, outcome.message, observed, now
    )


def ready_conditions(
    ready: bool, reason: str, message: str, observed: Any, now: str
) -> list[Condition]:
    """The Ready condition, keeping the observed transition time while its status and reason
    hold."""
    status = "True" if ready else "False"
    since = now
    for old in observed if isinstance(observed, list) else []:
        if (
            isinstance(old, dict)
            and old.get("type") == READY
            and old.get("status") == status
            and old.get("reason") == reason
        ):
            since = old.get("lastTransitionTime") or now
    return [
        Condition(
            type=READY, status=status, reason=reason, message=message, lastTransitionTime=since
        )
    ]
