"""A profile whose ConfigMap is still missing after an earlier sync asks to be synced again.

Metacontroller creates a missing child and swallows AlreadyExists
(``pkg/controller/common/manage_children.go``, ``updateChildren``). A profile re-created
under the name of one whose ConfigMap waits for the garbage collector cannot create its own
until that one is gone, and that deletion is no event of the new profile: its old owner's
uid is not the new one's (tests/e2e/test_profile_lifecycle_loop_e2e.py shows it through the
real API server).
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks.cluster.contract import MISSING_CHILD_RESYNC_SECONDS, SyncRequest, missing_child_resync
from hooks.cluster.seccomp import controller as seccomp
from hooks.cluster.selinux import controller as selinux

NOW = "2026-11-30T00:00:00Z"
GROUP = "security-profiles-operator.x-k8s.io"
SECCOMP = {
    "apiVersion": f"{GROUP}/v1beta1",
    "kind": "SeccompProfile",
    "spec": {"defaultAction": "SCMP_ACT_LOG"},
}
SELINUX = {
    "apiVersion": f"{GROUP}/v1alpha2",
    "kind": "SelinuxProfile",
    "spec": {"inherit": [{"name": "container"}], "allow": {"var_log_t": {"file": ["read"]}}},
}


def _request(
    shape: dict[str, Any], status: dict[str, Any] | None, children: dict[str, Any] | None = None
) -> SyncRequest:
    parent: dict[str, Any] = {
        **shape,
        "metadata": {"name": "p", "namespace": "n", "uid": "u2", "generation": 1},
    }
    if status is not None:
        parent["status"] = status
    return SyncRequest.model_validate(
        {"parent": parent, "children": children or {"ConfigMap.v1": {}}, "related": RELATED}
    )


def _seccomp(request: SyncRequest) -> Any:
    return seccomp.sync(request, NOW)


def _selinux(request: SyncRequest) -> Any:
    return selinux.sync(request, NOW)


SPOD = {
    "apiVersion": f"{GROUP}/v1alpha1",
    "kind": "SecurityProfilesOperatorDaemon",
    "metadata": {"name": "spod", "namespace": "security-profiles-operator", "uid": "s"},
    "spec": {"enableSelinux": True},
}
RELATED = {
    f"SecurityProfilesOperatorDaemon.{GROUP}/v1alpha1": {"security-profiles-operator/spod": SPOD}
}
KINDS = [(SECCOMP, _seccomp), (SELINUX, _selinux)]
SYNCED = {"status": "Pending", "observedGeneration": 1}


@pytest.mark.parametrize(("shape", "sync"), KINDS)
def test_first_sync_does_not_ask_for_a_resync(shape: dict[str, Any], sync: Any) -> None:
    answer = sync(_request(shape, None))
    assert [c["kind"] for c in answer.children] == ["ConfigMap"]
    assert answer.resyncAfterSeconds is None


@pytest.mark.parametrize(("shape", "sync"), KINDS)
def test_child_still_missing_after_an_earlier_sync_asks_for_a_resync(
    shape: dict[str, Any], sync: Any
) -> None:
    assert sync(_request(shape, SYNCED)).resyncAfterSeconds == MISSING_CHILD_RESYNC_SECONDS


@pytest.mark.parametrize(("shape", "sync"), KINDS)
def test_observed_child_needs_no_resync(shape: dict[str, Any], sync: Any) -> None:
    first = sync(_request(shape, None)).children[0]
    child = {**first, "metadata": {**first["metadata"], "uid": "c"}}
    key = f"n/{first['metadata']['name']}"
    request = _request(shape, SYNCED, {"ConfigMap.v1": {key: child}})
    assert sync(request).resyncAfterSeconds is None


def test_no_child_asked_for_needs_no_resync() -> None:
    request = _request(SECCOMP, {"status": "Error", "observedGeneration": 1})
    assert missing_child_resync(request, []) is None


def test_an_answer_that_asks_for_nothing_new_keeps_its_own_resync() -> None:
    """A finalize that waits for pods already asks to be synced again; a missing child
    does not shorten or lengthen that."""
    parent = _request(SECCOMP, SYNCED).parent
    parent["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "n", "uid": "pod"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "securityContext": {
                        "seccompProfile": {
                            "type": "Localhost",
                            "localhostProfile": "operator/n/p.json",
                        }
                    },
                }
            ]
        },
        "status": {"phase": "Running"},
    }
    request = SyncRequest.model_validate(
        {
            "parent": parent,
            "children": {"ConfigMap.v1": {}},
            "related": {"Pod.v1": {"n/web": pod}},
            "finalizing": True,
        }
    )
    assert seccomp.sync(request, NOW).resyncAfterSeconds == seccomp.FINALIZE_RESYNC_SECONDS
