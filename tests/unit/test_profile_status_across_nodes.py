"""A profile's status across its nodes' reports (hooks/cluster/profilestatus.py): it changes
with the state, not with each report, so that a profile on M nodes costs a few status
writes, not one per node (each node's report is a sync; Metacontroller writes a status that
changed)."""

from __future__ import annotations

from hooks.api.profilestate import ProfileState
from hooks.cluster.profilestatus import NodeReport, Outcome, across_nodes

INSTALLED = ProfileState.INSTALLED
PENDING = ProfileState.PENDING
ERROR = ProfileState.ERROR


def reports(*states: ProfileState, message: str | None = None) -> list[NodeReport]:
    return [NodeReport(f"node-{i:03}", state, message) for i, state in enumerate(states)]


def distinct(outcomes: list[Outcome]) -> list[Outcome]:
    seen: list[Outcome] = []
    for outcome in outcomes:
        if not seen or seen[-1] != outcome:
            seen.append(outcome)
    return seen


def test_nodes_reporting_one_by_one_change_the_status_once() -> None:
    """300 nodes each install the profile, one after the other: one outcome from the first
    report to the last."""
    outcomes = [across_nodes(reports(*[INSTALLED] * n)) for n in range(1, 301)]
    assert distinct(outcomes) == [
        Outcome(INSTALLED, "Available", "installed on every node that reported")
    ]


def test_pending_then_installed_nodes_change_it_three_times() -> None:
    """Nodes report Pending first, then each turns Installed: Pending, InProgress, Installed."""
    nodes = 50
    seen = [across_nodes(reports(*[PENDING] * n)) for n in range(1, nodes + 1)]
    seen += [
        across_nodes(reports(*[INSTALLED] * k, *[PENDING] * (nodes - k)))
        for k in range(1, nodes + 1)
    ]
    assert [o.state for o in distinct(seen)] == [PENDING, ProfileState.IN_PROGRESS, INSTALLED]


def test_an_error_names_the_first_failed_node_and_stays_as_more_fail() -> None:
    one = across_nodes(reports(INSTALLED, ERROR, message="no seccomp"))
    assert one == Outcome(ERROR, "InstallationFailed", "failed on node-001: no seccomp")
    many = [
        across_nodes(reports(INSTALLED, *[ERROR] * k, message="no seccomp")) for k in range(2, 40)
    ]
    assert distinct(many) == [
        Outcome(ERROR, "InstallationFailed", "failed on node-001 and other nodes: no seccomp")
    ]


def test_no_report_yet_is_pending() -> None:
    assert across_nodes([]).state is PENDING
