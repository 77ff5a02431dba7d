"""The state of a spod, read from the rollout of its observed DaemonSets.

A spod has one DaemonSet (nodesync's) or two (and the log enricher's). The
state of each is read on its own (``of_daemonset``), then ``combine`` tells
the spod's: RUNNING only when every DaemonSet is; otherwise the least advanced
state (PENDING, then CREATING, then UPDATING), with a message naming each
DaemonSet that is not running yet and what it waits for.

Only what the request shows counts, so the same DaemonSets always give the
same state. For one DaemonSet:

- no DaemonSet observed: CREATING (this very answer asks Metacontroller to
  create it; Go wrote PENDING only before it had done anything);
- the DaemonSet Metacontroller last applied (its
  ``metacontroller.k8s.io/last-applied-configuration`` annotation) has another
  spec than the one this answer asks for: UPDATING (the spod changed, and this
  answer updates the DaemonSet);
- the DaemonSet controller has not yet seen the latest DaemonSet spec, or not
  every node runs an up-to-date, available pod: CREATING while the DaemonSet is
  at its first generation (its spec never changed), UPDATING after;
- no node to run on (``desiredNumberScheduled`` 0): PENDING;
- every scheduled pod up to date and available: RUNNING.

ERROR is not a rollout state: the controller decides it from the spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hooks.api.spod import SPODState

REASONS = {
    SPODState.PENDING: "Pending",
    SPODState.CREATING: "Creating",
    SPODState.UPDATING: "Updating",
    SPODState.RUNNING: "Available",
}
ADVANCE = (SPODState.PENDING, SPODState.CREATING, SPODState.UPDATING, SPODState.RUNNING)
"""The rollout states, the least advanced first."""


@dataclass(frozen=True)
class Outcome:
    """A spod's state, with the reason and the message of its Ready condition."""

    state: SPODState
    reason: str
    message: str


def of_state(state: SPODState, message: str, reason: str | None = None) -> Outcome:
    return Outcome(state, reason or REASONS[state], message)


def _count(status: dict[str, Any], field: str) -> int:
    value = status.get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _pods(count: int) -> str:
    return f"{count} pod" if count == 1 else f"{count} pods"


def of_daemonset(
    observed: dict[str, Any] | None, name: str, applied_spec: Any = None, desired_spec: Any = None
) -> Outcome:
    """The state of the spod whose DaemonSet, named ``name``, was observed as ``observed``.

    ``applied_spec`` is the spec Metacontroller last applied (None when unknown),
    ``desired_spec`` the one being asked for now.
    """
    if observed is None:
        return of_state(SPODState.CREATING, f"creating DaemonSet {name}")
    if applied_spec is not None and applied_spec != desired_spec:
        return of_state(SPODState.UPDATING, f"applying the new spec to DaemonSet {name}")
    meta = observed.get("metadata") or {}
    status = observed.get("status") or {}
    generation = _count(meta, "generation")
    moving = SPODState.CREATING if generation <= 1 else SPODState.UPDATING
    seen = status.get("observedGeneration")
    if not isinstance(seen, int) or seen < generation:
        return of_state(
            moving,
            f"waiting for the DaemonSet controller to see generation {generation} of DaemonSet "
            f"{name}",
        )
    desired = _count(status, "desiredNumberScheduled")
    updated = _count(status, "updatedNumberScheduled")
    available = _count(status, "numberAvailable")
    if desired == 0:
        return of_state(SPODState.PENDING, f"DaemonSet {name} has no node to run on")
    if updated < desired:
        return of_state(moving, f"{updated} of {_pods(desired)} up to date in DaemonSet {name}")
    if available < desired:
        return of_state(moving, f"{available} of {_pods(desired)} available in DaemonSet {name}")
    return of_state(SPODState.RUNNING, f"{_pods(available)} available in DaemonSet {name}")


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """The state of a spod from the states of its DaemonSets (at least one), in their order.

    RUNNING when every one is running, with every message; otherwise the least
    advanced state, with the messages of the DaemonSets that are not running.
    """
    if len(outcomes) == 1:
        return outcomes[0]
    state = min((outcome.state for outcome in outcomes), key=ADVANCE.index)
    shown = [o for o in outcomes if o.state is not SPODState.RUNNING] or list(outcomes)
    return of_state(state, "; ".join(outcome.message for outcome in shown))
