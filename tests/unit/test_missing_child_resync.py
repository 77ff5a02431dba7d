"""A parent whose child is still missing after an earlier sync asks to be synced again.

Metacontroller ignores AlreadyExists when it creates a child: a profile re-created under
the name of one whose ConfigMap waits for the garbage collector cannot create its own until
that one is gone, and no event tells the new profile when it goes
(tests/e2e/test_profile_lifecycle_loop_e2e.py shows it through the real API server).
"""

from __future__ import annotations

from typing import Any

from hooks.contract import MISSING_CHILD_RESYNC_SECONDS, SyncRequest, missing_child_resync
from hooks.seccomp import controller

NOW = "2026-11-30T00:00:00Z"


def _request(status: dict[str, Any] | None, children: dict[str, Any] | None) -> SyncRequest:
    parent: dict[str, Any] = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "p", "namespace": "n", "uid": "u", "generation": 1},
        "spec": {"defaultAction": "SCMP_ACT_LOG"},
    }
    if status is not None:
        parent["status"] = status
    return SyncRequest.model_validate(
        {"parent": parent, "children": children or {"ConfigMap.v1": {}}, "related": {}}
    )


def test_first_sync_does_not_ask_for_a_resync() -> None:
    answer = controller.sync(_request(None, None), NOW)
    assert [c["metadata"]["name"] for c in answer.children] == ["seccomp-p"]
    assert answer.resyncAfterSeconds is None


def test_child_still_missing_after_an_earlier_sync_asks_for_a_resync() -> None:
    answer = controller.sync(_request({"status": "Pending", "observedGeneration": 1}, None), NOW)
    assert answer.resyncAfterSeconds == MISSING_CHILD_RESYNC_SECONDS


def test_observed_child_needs_no_resync() -> None:
    first = controller.sync(_request(None, None), NOW)
    child = {**first.children[0], "metadata": {**first.children[0]["metadata"], "uid": "c"}}
    request = _request(
        {"status": "Pending", "observedGeneration": 1}, {"ConfigMap.v1": {"n/seccomp-p": child}}
    )
    assert controller.sync(request, NOW).resyncAfterSeconds is None


def test_no_child_asked_for_needs_no_resync() -> None:
    request = _request({"status": "Installed", "observedGeneration": 1}, None)
    assert missing_child_resync(request, []) is None
