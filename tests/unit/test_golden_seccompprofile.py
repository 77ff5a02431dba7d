"""Golden tests of the SeccompProfile hooks: request documents in, response documents out.

Each folder under tests/golden/seccompprofile/ holds a ``request.json`` (what
Metacontroller POSTs) and a ``response.json`` (what the hook must answer).
Run ``pytest --regen-golden`` to rewrite the responses, then review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller

GOLDEN = Path(__file__).parent.parent / "golden" / "seccompprofile"
NOW = "2026-01-01T00:00:00Z"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "request.json").exists())


@pytest.mark.parametrize("case", CASES)
def test_sync_matches_golden_response(case: str, request: pytest.FixtureRequest) -> None:
    folder = GOLDEN / case
    hook_request = SyncRequest.model_validate(json.loads((folder / "request.json").read_text()))
    got = controller.sync(hook_request, NOW).to_wire()
    expected_file = folder / "response.json"
    if request.config.getoption("--regen-golden"):
        expected_file.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(expected_file.read_text())


@pytest.mark.parametrize("case", CASES)
def test_sync_is_stable_once_status_is_written_back(case: str) -> None:
    """Writing the answered status back into the parent and asking again changes nothing."""
    raw = json.loads((GOLDEN / case / "request.json").read_text())
    first = controller.sync(SyncRequest.model_validate(raw), NOW).to_wire()
    raw["parent"]["status"] = first["status"]
    second = controller.sync(SyncRequest.model_validate(raw), "2030-06-06T06:06:06Z").to_wire()
    assert second == first


def test_every_state_and_reason_is_covered() -> None:
    states, reasons = set(), set()
    for case in CASES:
        status = json.loads((GOLDEN / case / "response.json").read_text())["status"]
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
