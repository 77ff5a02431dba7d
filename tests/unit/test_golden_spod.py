"""Golden tests of the SecurityProfilesOperatorDaemon sync hook: request documents in, response
documents out.

Each folder under tests/golden/spod/ holds a ``request.json`` (what Metacontroller
POSTs) and a ``response.json`` (what the hook must answer).
Run ``pytest --regen-golden`` to rewrite the responses, then review the diff
(tests/helpers/golden.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hooks.cluster.contract import LAST_APPLIED, SyncRequest
from hooks.cluster.spod import controller, daemonset, validation
from tests.helpers.golden import Golden, cases, golden_folder, request_of, response_of

GOLDEN = golden_folder("spod")
NOW = "2026-01-01T00:00:00Z"
CASES = cases(GOLDEN)
INVALID = [case for case in CASES if case.startswith("invalid-")]
VALID = [case for case in CASES if not case.startswith("invalid-")]


def _request(case: str) -> dict[str, Any]:
    return request_of(GOLDEN / case)


def _response(case: str) -> dict[str, Any]:
    return response_of(GOLDEN / case)


def _observed(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return list((raw.get("children") or {}).get(controller.DAEMONSET, {}).values())


@pytest.mark.parametrize("case", CASES)
def test_sync_matches_golden_response(case: str, golden: Golden) -> None:
    got = controller.sync(SyncRequest.model_validate(_request(case)), NOW).to_wire()
    golden.check(GOLDEN / case, got)


@pytest.mark.parametrize("case", CASES)
def test_status_is_byte_identical_for_identical_input(case: str) -> None:
    first = controller.sync(SyncRequest.model_validate(_request(case)), NOW).to_wire()
    second = controller.sync(SyncRequest.model_validate(_request(case)), NOW).to_wire()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.mark.parametrize("case", CASES)
def test_sync_is_stable_once_status_is_written_back(case: str) -> None:
    """Writing the answered status back into the parent and asking later changes nothing."""
    raw = _request(case)
    first = controller.sync(SyncRequest.model_validate(raw), NOW).to_wire()
    raw["parent"]["status"] = {
        **first["status"],
        "observedGeneration": raw["parent"]["metadata"]["generation"],
    }
    second = controller.sync(SyncRequest.model_validate(raw), "2030-06-06T06:06:06Z").to_wire()
    assert second == first


@pytest.mark.parametrize("case", INVALID)
def test_invalid_spec_is_an_error_that_keeps_the_running_daemonset(case: str) -> None:
    raw = _request(case)
    response = controller.sync(SyncRequest.model_validate(raw), NOW).to_wire()
    assert response["status"]["state"] == "ERROR"
    [condition] = response["status"]["conditions"]
    assert condition["status"] == "False"
    assert condition["reason"].startswith("Invalid")
    # The message names the field that is wrong.
    assert condition["message"].split(":")[0].startswith(("spec.", "metadata."))
    observed = _observed(raw)
    # Every observed DaemonSet (nodesync's, the log enricher's) is kept, in that order.
    assert [child["metadata"]["name"] for child in response["children"]] == [
        ds["metadata"]["name"] for ds in observed
    ]
    for child, ds in zip(response["children"], observed, strict=True):
        annotations = ds["metadata"]["annotations"]
        if LAST_APPLIED in annotations:
            assert child == json.loads(annotations[LAST_APPLIED])
        else:
            assert child["spec"] == ds["spec"]
            assert LAST_APPLIED not in child["metadata"].get("annotations", {})
        assert "status" not in child


def test_every_invalid_case_names_the_field_it_is_about() -> None:
    fields = {
        "invalid-toleration-value-with-exists": (
            "spec.tolerations[1].value",
            validation.INVALID_TOLERATION,
        ),
        "invalid-toleration-operator": (
            "spec.tolerations[1].operator",
            validation.INVALID_TOLERATION,
        ),
        "invalid-toleration-effect": ("spec.tolerations[1].effect", validation.INVALID_TOLERATION),
        "invalid-toleration-seconds-without-noexecute": (
            "spec.tolerations[1].tolerationSeconds",
            validation.INVALID_TOLERATION,
        ),
        "invalid-toleration-empty-key-with-equal": (
            "spec.tolerations[1].operator",
            validation.INVALID_TOLERATION,
        ),
        "invalid-toleration-key": ("spec.tolerations[1].key", validation.INVALID_TOLERATION),
        "invalid-toleration-value": ("spec.tolerations[1].value", validation.INVALID_TOLERATION),
        "invalid-toleration-seconds-not-a-number": (
            "spec.tolerations[1].tolerationSeconds",
            validation.INVALID_TOLERATION,
        ),
        "invalid-resources-negative": (
            "spec.daemonResourceRequirements.requests[cpu]",
            validation.INVALID_RESOURCES,
        ),
        "invalid-resources-unparseable": (
            "spec.daemonResourceRequirements.limits[memory]",
            validation.INVALID_RESOURCES,
        ),
        "invalid-resources-fractional-exponent": (
            "spec.daemonResourceRequirements.limits[memory]",
            validation.INVALID_RESOURCES,
        ),
        "invalid-resources-limit-below-request": (
            "spec.daemonResourceRequirements.requests[memory]",
            validation.INVALID_RESOURCES,
        ),
        "invalid-resources-unknown-name": (
            "spec.daemonResourceRequirements.requests[gpu]",
            validation.INVALID_RESOURCES,
        ),
        "invalid-verbosity-too-high": ("spec.verbosity", validation.INVALID_VERBOSITY),
        "invalid-verbosity-negative": ("spec.verbosity", validation.INVALID_VERBOSITY),
        "invalid-host-proc-relative": ("spec.hostProcVolumePath", validation.INVALID_HOST_PROC),
        "invalid-host-proc-dotdot": ("spec.hostProcVolumePath", validation.INVALID_HOST_PROC),
        "invalid-priority-class-name": (
            "spec.priorityClassName",
            validation.INVALID_PRIORITY_CLASS,
        ),
        "invalid-image-annotation": (
            f"metadata.annotations[{daemonset.IMAGE_ANNOTATION}]",
            validation.INVALID_IMAGE,
        ),
        "invalid-unknown-field": ("spec.enableEverything", validation.INVALID_SPEC),
        "invalid-name-too-long": ("metadata.name", validation.INVALID_NAME),
        "invalid-without-daemonset-has-no-child": ("spec.verbosity", validation.INVALID_VERBOSITY),
        "invalid-keeps-observed-without-last-applied": (
            "spec.verbosity",
            validation.INVALID_VERBOSITY,
        ),
        "invalid-keeps-transition-time": ("spec.verbosity", validation.INVALID_VERBOSITY),
        "invalid-keeps-both-daemonsets": ("spec.verbosity", validation.INVALID_VERBOSITY),
    }
    assert set(fields) == set(INVALID)
    for case, (field, reason) in fields.items():
        [condition] = _response(case)["status"]["conditions"]
        assert condition["message"].startswith(field + ":"), (case, condition["message"])
        assert condition["reason"] == reason, case


def test_every_state_is_covered() -> None:
    states = {_response(case)["status"]["state"] for case in CASES}
    assert states == {"PENDING", "CREATING", "UPDATING", "RUNNING", "ERROR"}


@pytest.mark.parametrize(
    ("case", "state", "message"),
    [
        ("creating-no-daemonset-yet", "CREATING", "creating DaemonSet spod"),
        (
            "creating-daemonset-not-yet-observed",
            "CREATING",
            "waiting for the DaemonSet controller to see generation 1 of DaemonSet spod",
        ),
        ("creating-pods-starting", "CREATING", "1 of 3 pods available in DaemonSet spod"),
        ("pending-no-node-to-run-on", "PENDING", "DaemonSet spod has no node to run on"),
        ("running-every-pod-available", "RUNNING", "3 pods available in DaemonSet spod"),
        (
            "updating-generation-not-yet-observed",
            "UPDATING",
            "waiting for the DaemonSet controller to see generation 2 of DaemonSet spod",
        ),
        ("updating-pods-rolling", "UPDATING", "1 of 3 pods up to date in DaemonSet spod"),
        ("updating-pod-unavailable", "UPDATING", "2 of 3 pods available in DaemonSet spod"),
        # With the log enricher, both DaemonSets count: the least advanced state, naming
        # every DaemonSet that is not running yet.
        (
            "updating-spec-changed-every-feature",
            "CREATING",
            "applying the new spec to DaemonSet spod; creating DaemonSet spod-log-enricher",
        ),
        (
            "log-enricher-enabled",
            "CREATING",
            "creating DaemonSet spod; creating DaemonSet spod-log-enricher",
        ),
        (
            "creating-log-enricher-while-nodesync-runs",
            "CREATING",
            "creating DaemonSet spod-log-enricher",
        ),
        (
            "creating-log-enricher-pods-starting",
            "CREATING",
            "1 of 3 pods available in DaemonSet spod-log-enricher",
        ),
        (
            "creating-log-enricher-while-nodesync-updates",
            "CREATING",
            "1 of 3 pods up to date in DaemonSet spod; "
            "0 of 3 pods available in DaemonSet spod-log-enricher",
        ),
        (
            "updating-log-enricher-pods-rolling",
            "UPDATING",
            "2 of 3 pods up to date in DaemonSet spod-log-enricher",
        ),
        (
            "updating-log-enricher-spec-changed",
            "UPDATING",
            "applying the new spec to DaemonSet spod-log-enricher",
        ),
        (
            "running-with-log-enricher",
            "RUNNING",
            "3 pods available in DaemonSet spod; 3 pods available in DaemonSet spod-log-enricher",
        ),
        (
            "log-enricher-disabled-deletes-its-daemonset",
            "RUNNING",
            "3 pods available in DaemonSet spod",
        ),
    ],
)
def test_state_follows_the_observed_rollout(case: str, state: str, message: str) -> None:
    status = _response(case)["status"]
    assert status["state"] == state
    [condition] = status["conditions"]
    assert condition["message"] == message
    assert condition["status"] == ("True" if state == "RUNNING" else "False")


def test_ready_transition_time_is_kept_while_nothing_changes() -> None:
    [kept] = _response("running-keeps-transition-time")["status"]["conditions"]
    assert kept["lastTransitionTime"] == "2025-12-31T12:00:00Z"
    [kept_error] = _response("invalid-keeps-transition-time")["status"]["conditions"]
    assert kept_error["lastTransitionTime"] == "2025-12-31T12:00:00Z"
    assert kept_error["message"] != "old message"
    [changed] = _response("running-after-error-takes-new-transition-time")["status"]["conditions"]
    assert changed["lastTransitionTime"] == NOW and changed["status"] == "True"


@pytest.mark.parametrize("case", VALID)
def test_valid_spod_has_its_daemonsets_with_fixed_names_and_selectors(case: str) -> None:
    """A spec change is an in-place DaemonSet update: names and (immutable) selectors never move.

    nodesync's DaemonSet always; the log enricher's exactly when ``enableLogEnricher``
    (without it, Metacontroller deletes the one it observed)."""
    enricher = bool(_request(case)["parent"]["spec"].get("enableLogEnricher"))
    children = _response(case)["children"]
    assert [child["metadata"]["name"] for child in children] == (
        ["spod", "spod-log-enricher"] if enricher else ["spod"]
    )
    selectors = [daemonset.selector("spod"), daemonset.log_enricher_selector("spod")]
    accounts = ["spo-nodesync", "spo-log-enricher"]
    for child, selector, account in zip(children, selectors, accounts, strict=False):
        assert child["kind"] == "DaemonSet"
        assert child["metadata"]["namespace"] == "security-profiles-operator"
        assert child["spec"]["selector"] == selector
        labels = child["spec"]["template"]["metadata"]["labels"]
        assert child["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pod = child["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account
        assert pod.get("hostPID", False) is (account == "spo-log-enricher")
