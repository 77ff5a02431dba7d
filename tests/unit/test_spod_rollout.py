"""How the states of a spod's DaemonSets make the spod's state (``rollout.combine``)."""

from __future__ import annotations

import itertools

import pytest

from hooks.api.spod import SPODState
from hooks.cluster.spod import rollout

NODESYNC = rollout.of_state(SPODState.RUNNING, "3 pods available in DaemonSet spod")


def test_one_daemonset_is_its_own_state() -> None:
    for state in rollout.ADVANCE:
        outcome = rollout.of_state(state, f"DaemonSet spod is {state.value}")
        assert rollout.combine([outcome]) == outcome


def test_running_only_when_every_daemonset_runs() -> None:
    enricher = rollout.of_state(
        SPODState.RUNNING, "3 pods available in DaemonSet spod-log-enricher"
    )
    assert rollout.combine([NODESYNC, enricher]) == rollout.Outcome(
        SPODState.RUNNING,
        "Available",
        "3 pods available in DaemonSet spod; 3 pods available in DaemonSet spod-log-enricher",
    )


@pytest.mark.parametrize(("first", "second"), list(itertools.product(rollout.ADVANCE, repeat=2)))
def test_the_least_advanced_state_wins_and_every_waiting_daemonset_is_named(
    first: SPODState, second: SPODState
) -> None:
    outcomes = [
        rollout.of_state(first, "nodesync says"),
        rollout.of_state(second, "the log enricher says"),
    ]
    combined = rollout.combine(outcomes)
    assert combined.state is min(first, second, key=rollout.ADVANCE.index)
    assert combined.reason == rollout.REASONS[combined.state]
    waiting = [o.message for o in outcomes if o.state is not SPODState.RUNNING]
    assert combined.message == "; ".join(waiting or [o.message for o in outcomes])


def test_the_order_of_advance() -> None:
    assert rollout.ADVANCE == (
        SPODState.PENDING,
        SPODState.CREATING,
        SPODState.UPDATING,
        SPODState.RUNNING,
    )
