"""Golden tests of the SeccompProfile hooks: request documents in, response documents out.

Each folder under tests/golden/seccompprofile/ holds a ``request.json`` (what
Metacontroller POSTs) and a ``response.json`` (what the hook must answer).
Run ``pytest --regen-golden`` to rewrite the responses, then review the diff
(tests/helpers/golden.py).
"""

from __future__ import annotations

import pytest

from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller
from tests.helpers.golden import Golden, cases, golden_folder, request_of, response_of

GOLDEN = golden_folder("seccompprofile")
NOW = "2026-01-01T00:00:00Z"
CASES = cases(GOLDEN)


@pytest.mark.parametrize("case", CASES)
def test_sync_matches_golden_response(case: str, golden: Golden) -> None:
    folder = GOLDEN / case
    hook_request = SyncRequest.model_validate(request_of(folder))
    golden.check(folder, controller.sync(hook_request, NOW).to_wire())


@pytest.mark.parametrize("case", CASES)
def test_sync_is_stable_once_status_is_written_back(case: str) -> None:
    """Writing the answered status back into the parent and asking again changes nothing."""
    raw = request_of(GOLDEN / case)
    first = controller.sync(SyncRequest.model_validate(raw), NOW).to_wire()
    raw["parent"]["status"] = first["status"]
    second = controller.sync(SyncRequest.model_validate(raw), "2030-06-06T06:06:06Z").to_wire()
    assert second == first


def test_every_state_and_reason_is_covered() -> None:
    states, reasons = set(), set()
    for case in CASES:
        status = response_of(GOLDEN / case)["status"]
        states.add(status["status"])
        reasons.add(status["conditions"][0]["reason"])
    assert states == {
        "Pending",
        "InProgress",
        "Installed",
        "Error",
        "Terminating",
        "Disabled",
        "Partial",
    }
    assert {
        "InvalidSeccompProfile",
        "BaseProfileNotFound",
        "BaseProfileCycle",
        "BaseProfileTooDeep",
        "InvalidBaseProfile",
        "InstallationFailed",
        "DisallowedSyscalls",
        "DisallowedSeccompAction",
    } <= reasons
