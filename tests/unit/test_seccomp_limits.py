"""Limits that would make a golden file too large to keep: a profile bigger than a ConfigMap."""

from __future__ import annotations

from typing import Any

from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller


def _request(spec: dict[str, Any], children: dict[str, Any] | None = None) -> SyncRequest:
    parent = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "huge", "namespace": "team-a"},
        "spec": spec,
    }
    return SyncRequest.model_validate({"parent": parent, "children": children or {}})


def _huge_spec() -> dict[str, Any]:
    rules = [
        {
            "names": ["read"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}],
        }
        for i in range(12_000)
    ]
    return {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}


def test_profile_larger_than_a_configmap_is_an_error_without_child() -> None:
    response = controller.sync(_request(_huge_spec()), "2026-01-01T00:00:00Z")
    assert response.children == []
    assert response.status is not None
    assert response.status["status"] == "Error"
    condition = response.status["conditions"][0]
    assert condition["reason"] == "ProfileTooLarge"
    assert "more than a ConfigMap can hold" in condition["message"]


def test_profile_larger_than_a_configmap_keeps_the_installed_one() -> None:
    installed = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "seccomp-huge", "namespace": "team-a", "resourceVersion": "9"},
        "data": {"profile.json": '{"defaultAction": "SCMP_ACT_ERRNO"}'},
    }
    request = _request(_huge_spec(), {"ConfigMap.v1": {"team-a/seccomp-huge": installed}})
    response = controller.sync(request, "2026-01-01T00:00:00Z")
    assert response.children == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "seccomp-huge", "namespace": "team-a"},
            "data": {"profile.json": '{"defaultAction": "SCMP_ACT_ERRNO"}'},
        }
    ]
    assert response.status is not None and response.status["status"] == "Error"


def test_just_under_the_limit_is_installed() -> None:
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "listenerMetadata": "x" * 500_000}
    response = controller.sync(_request(spec), "2026-01-01T00:00:00Z")
    assert response.status is not None and response.status["status"] == "Pending"
    assert len(response.children) == 1
