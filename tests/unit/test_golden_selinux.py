"""Golden tests of the SelinuxProfile and RawSelinuxProfile hooks: request documents in,
response documents out.

Each folder under tests/golden/selinuxprofile/ and tests/golden/rawselinuxprofile/
holds a ``request.json`` (what Metacontroller POSTs) and a ``response.json`` (what
the hook must answer). Run ``pytest --regen-golden`` to rewrite the responses,
then review the diff (tests/helpers/golden.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks.cluster.contract import SyncRequest
from hooks.cluster.selinux import controller
from tests.helpers.golden import GOLDEN, Golden, cases, golden_folder, request_of, response_of

KINDS = {"selinuxprofile": controller.SELINUX_KIND, "rawselinuxprofile": controller.RAW_KIND}
NOW = "2026-01-01T00:00:00Z"
CASES = [(folder, case) for folder in KINDS for case in cases(golden_folder(folder))]
IDS = [f"{folder}/{case}" for folder, case in CASES]


def _answer(folder: str, raw: dict[str, Any], now: str = NOW) -> dict[str, Any]:
    return controller.sync(SyncRequest.model_validate(raw), now, KINDS[folder]).to_wire()


def _responses(folder: str) -> list[dict[str, Any]]:
    return [response_of(GOLDEN / f / c) for f, c in CASES if f == folder]


@pytest.mark.parametrize(("folder", "case"), CASES, ids=IDS)
def test_sync_matches_golden_response(folder: str, case: str, golden: Golden) -> None:
    path = GOLDEN / folder / case
    golden.check(path, _answer(folder, request_of(path)))


@pytest.mark.parametrize(("folder", "case"), CASES, ids=IDS)
def test_sync_is_stable_once_status_is_written_back(folder: str, case: str) -> None:
    """Writing the answered status back into the parent and asking again changes nothing."""
    raw = request_of(GOLDEN / folder / case)
    first = _answer(folder, raw)
    raw["parent"]["status"] = first["status"]
    assert _answer(folder, raw, "2030-06-06T06:06:06Z") == first


@pytest.mark.parametrize("folder", list(KINDS))
def test_every_state_and_reason_is_covered(folder: str) -> None:
    states = {r["status"]["status"] for r in _responses(folder)}
    reasons = {r["status"]["conditions"][0]["reason"] for r in _responses(folder)}
    assert states >= {"Pending", "InProgress", "Installed", "Error", "Terminating", "Disabled"}
    assert {
        "SelinuxDisabled",
        "InstallationFailed",
        "DeniedSelinuxRule",
        "Deleting",
        "Available",
    } <= reasons
    if folder == "selinuxprofile":
        assert "Partial" in states
        assert {
            "InvalidSelinuxProfile",
            "SystemProfileNotAllowed",
            "InheritedProfileNotFound",
            "InheritedProfileDisabled",
            "InheritCycle",
        } <= reasons
    else:
        assert {
            "InvalidRawSelinuxProfile",
            "ForbiddenCILStatement",
            "SystemProfileNotAllowed",
        } <= reasons


@pytest.mark.parametrize("folder", list(KINDS))
def test_usage_is_always_the_process_type_of_the_block(folder: str) -> None:
    for (f, case), response in zip(
        [c for c in CASES if c[0] == folder], _responses(folder), strict=True
    ):
        raw = request_of(GOLDEN / f / case)
        meta = raw["parent"]["metadata"]
        assert response["status"]["usage"] == f"{meta['name']}_{meta['namespace']}.process"


@pytest.mark.parametrize(("folder", "case"), CASES, ids=IDS)
def test_an_error_never_takes_away_an_installed_configmap(folder: str, case: str) -> None:
    raw = request_of(GOLDEN / folder / case)
    response = response_of(GOLDEN / folder / case)
    observed = list((raw.get("children") or {}).get("ConfigMap.v1", {}).values())
    if response["status"]["status"] != "Error" or not observed:
        return
    assert [child["data"] for child in response["children"]] == [cm["data"] for cm in observed]


def test_finalize_keeps_the_configmap_only_while_pods_or_inheritors_need_it() -> None:
    for folder, case in CASES:
        raw = request_of(GOLDEN / folder / case)
        if not raw["finalizing"]:
            continue
        response = response_of(GOLDEN / folder / case)
        message = response["status"]["conditions"][0]["message"]
        waits_for_users = message.startswith(
            ("waiting for 1 pod", "waiting for the SelinuxProfiles")
        )
        assert bool(response["children"]) == waits_for_users, case
        assert response["finalized"] is ("no node has it" in message), case
        assert (response.get("resyncAfterSeconds") is None) == response["finalized"], case
