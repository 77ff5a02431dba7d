"""Golden tests of the ProfileBinding controller: status.activeWorkloads, the Ready condition,
finalize.

Each folder under tests/golden/binding/controller/ holds a sync (or finalize)
``request.json`` and the ``response.json`` the hook must answer.
``pytest --regen-golden`` rewrites the answers (tests/helpers/golden.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks.cluster.binding import controller
from hooks.cluster.contract import CustomizeRequest, SyncRequest
from tests.helpers.golden import Golden, cases, golden_folder, request_of

GOLDEN = golden_folder("binding/controller")
CASES = cases(GOLDEN)
NOW = "2026-01-02T00:00:00Z"


def _sync(raw: dict[str, Any], now: str = NOW) -> dict[str, Any]:
    return controller.sync(SyncRequest.model_validate(raw), now).to_wire()


def _load(case: str) -> dict[str, Any]:
    return request_of(GOLDEN / case)


@pytest.mark.parametrize("case", CASES)
def test_sync_matches_golden_response(case: str, golden: Golden) -> None:
    golden.check(GOLDEN / case, _sync(_load(case)))


@pytest.mark.parametrize("case", CASES)
def test_sync_is_stable_once_status_is_written_back(case: str) -> None:
    raw = _load(case)
    first = _sync(raw)
    raw["parent"]["status"] = first["status"]
    assert _sync(raw, "2030-06-06T06:06:06Z") == first


@pytest.mark.parametrize("case", CASES)
def test_binding_has_no_children(case: str) -> None:
    assert _sync(_load(case)).get("children", []) == []


def test_active_workloads_are_the_pods_running_the_image_under_the_profile() -> None:
    status = _sync(_load("installed-lists-active-workloads"))["status"]
    assert status["activeWorkloads"] == [
        "team-a/bound-container",
        "team-a/bound-init",
        "team-a/bound-pod-level",
    ]
    assert status["conditions"][0]["status"] == "True"
    wildcard = _sync(_load("wildcard-lists-every-pod-under-the-profile"))["status"]
    assert "team-a/other-image-same-profile" in wildcard["activeWorkloads"]
    assert "team-a/finished" not in wildcard["activeWorkloads"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("profile-missing", "ProfileNotFound"),
        ("profile-not-installed", "ProfileNotInstalled"),
        ("invalid-binding-without-profile-ref", "InvalidProfileBinding"),
        ("invalid-binding-unknown-kind", "InvalidProfileBinding"),
        ("invalid-binding-empty-image", "InvalidProfileBinding"),
        ("finalize-waits-for-workloads", "Deleting"),
        ("selinux-profile-bound", "Bound"),
    ],
)
def test_condition_reason(case: str, reason: str) -> None:
    assert _sync(_load(case))["status"]["conditions"][0]["reason"] == reason


def test_finalize_holds_the_binding_while_pods_use_it() -> None:
    waiting = _sync(_load("finalize-waits-for-workloads"))
    assert waiting["finalized"] is False
    assert waiting["resyncAfterSeconds"] == controller.FINALIZE_RESYNC_SECONDS
    assert waiting["status"]["activeWorkloads"]
    done = _sync(_load("finalize-done-without-workloads"))
    assert done["finalized"] is True
    assert "activeWorkloads" not in done["status"]
    assert _sync(_load("finalize-invalid-binding-done"))["finalized"] is True


def test_condition_time_kept_when_unchanged_and_moved_on_transition() -> None:
    kept = _sync(_load("condition-time-kept-when-unchanged"))["status"]["conditions"][0]
    assert kept["lastTransitionTime"] == "2025-06-01T00:00:00Z"
    moved = _sync(_load("condition-time-moves-on-transition"))["status"]["conditions"][0]
    assert moved["lastTransitionTime"] == NOW


USES = "uses.spo.x-k8s.io/"


@pytest.mark.parametrize("deleting", [False, True])
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"image": "nginx:1.27", "profileRef": {"kind": "SeccompProfile", "name": "web"}},
            [
                ("v1", "pods", None, USES + "SeccompProfile-web"),
                ("security-profiles-operator.x-k8s.io/v1beta1", "seccompprofiles", ["web"], None),
            ],
        ),
        (
            {"image": "nginx:1.27", "profileRef": {"kind": "SelinuxProfile", "name": "pol"}},
            [
                ("v1", "pods", None, USES + "SelinuxProfile-pol"),
                ("security-profiles-operator.x-k8s.io/v1alpha2", "selinuxprofiles", ["pol"], None),
            ],
        ),
        ({"image": "nginx:1.27", "profileRef": {"kind": "AppArmorProfile", "name": "x"}}, []),
        ({"image": "nginx:1.27"}, []),
        ({"image": "nginx:1.27", "profileRef": {"kind": "SeccompProfile", "name": ""}}, []),
    ],
)
def test_customize_asks_for_the_pods_under_the_profile_and_the_bound_profile(
    spec: dict[str, Any], expected: list[Any], deleting: bool
) -> None:
    """Only the pods labelled as using the bound profile; every pod of the namespace while the
    binding is being deleted (its finalize hook must not trust a label)."""
    meta: dict[str, Any] = {"name": "b", "namespace": "team-a"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
        expected = [(*rule[:3], None) for rule in expected] or [("v1", "pods", None, None)]
    parent = {"metadata": meta, "spec": spec}
    rules = controller.customize(CustomizeRequest.model_validate({"parent": parent})).to_wire()[
        "relatedResources"
    ]

    def selected(rule: dict[str, Any]) -> str | None:
        labels = (rule.get("labelSelector") or {}).get("matchLabels") or {}
        assert all(value == "true" for value in labels.values())
        return next(iter(labels), None)

    assert [
        (r["apiVersion"], r["resource"], r.get("names"), selected(r)) for r in rules
    ] == expected
    assert all(r["namespace"] == "team-a" for r in rules)
