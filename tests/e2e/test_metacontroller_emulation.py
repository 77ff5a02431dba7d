"""The tests' Metacontroller does what Metacontroller v4.17.2 does (issue 16, part A).

Each test pins one behaviour read in Metacontroller's source (see the docstrings of
``metacontroller_step`` and ``metacontroller_loop``) through the real API server and the
project's real hooks, with the SeccompProfile controller and the namespace decorator of
``metacontroller/base``. The emulation this replaced failed every one of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from hooks.api import GROUP
from tests.helpers.controlplane import METACONTROLLER, ControlPlane
from tests.helpers.metacontroller_apply import LAST_APPLIED
from tests.helpers.metacontroller_common import api_for, collector_api_for
from tests.helpers.metacontroller_loop import Metacontroller, controllers
from tests.helpers.metacontroller_step import CONTROLLER_UID, CompositeStep, DecoratorStep
from tests.helpers.stand_ins import GarbageCollectorStandIn

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NS = "mc-emulation-e2e"
OPERATOR_NS = "security-profiles-operator"
PROFILES = f"seccompprofiles.{GROUP}"
SECCOMP = yaml.safe_load(
    (REPO / "metacontroller" / "base" / "seccompprofile-controller.yaml").read_text()
)
DECORATOR = yaml.safe_load(
    (REPO / "metacontroller" / "base" / "namespace-decorator.yaml").read_text()
)
FINALIZER = "metacontroller.io/compositecontroller-seccompprofile-controller"
CONFIGURATION = "spo-mutating-webhook-configuration"
T = TypeVar("T")


def until(what: str, check: Callable[[], T], timeout: float = 60.0) -> T:
    """``check`` until it returns without AssertionError; its last message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not so after {timeout:.0f}s: {error}") from None
        time.sleep(0.05)


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    yield installed
    installed.kubectl("delete", "namespace", NS, "--wait=false", check=False)
    # The decorator's webhook configuration would send pods to a webhook nobody serves now.
    installed.kubectl(
        "delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found", check=False
    )


@pytest.fixture
def step(plane: ControlPlane, hook_server: str) -> CompositeStep:
    return CompositeStep(plane, hook_server, SECCOMP)


def _profile(plane: ControlPlane, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec or {"defaultAction": "SCMP_ACT_LOG"},
        }
    )
    return dict(plane.kubectl_json("get", PROFILES, name, "-n", NS))


def _configmap(plane: ControlPlane, name: str) -> dict[str, Any] | None:
    got = plane.kubectl(
        "get", "configmap", name, "-n", NS, "-o", "json", "--show-managed-fields", check=False
    )
    return json.loads(got.stdout) if got.returncode == 0 else None


def _gone(plane: ControlPlane, resource: str, name: str) -> bool:
    got = plane.kubectl("get", resource, name, "-n", NS, check=False)
    return got.returncode != 0 and "NotFound" in got.stderr


# -- 1. finalize ---------------------------------------------------------------------------------


def test_finalized_parent_leaves_its_children_to_the_garbage_collector(
    plane: ControlPlane, step: CompositeStep
) -> None:
    """``finalized: true`` removes the finalizer and the children are never managed again:
    the ConfigMap stays, owned by a uid that no longer exists, until a garbage collector."""
    uid = _profile(plane, "gc-me")["metadata"]["uid"]
    step.sync(NS, "gc-me")
    before = _configmap(plane, "seccomp-gc-me")
    assert before is not None
    plane.kubectl("delete", PROFILES, "gc-me", "-n", NS, "--wait=false")
    assert step.sync(NS, "gc-me")["finalized"] is True
    assert _gone(plane, PROFILES, "gc-me")
    after = _configmap(plane, "seccomp-gc-me")
    assert after is not None, "Metacontroller deleted a child the finalize answer left out"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert [r["uid"] for r in after["metadata"]["ownerReferences"]] == [uid]

    collector = GarbageCollectorStandIn(collector_api_for(plane), [("v1", "configmaps")])
    assert f"ConfigMap {NS}/seccomp-gc-me" in collector.collect()
    assert _configmap(plane, "seccomp-gc-me") is None


# -- 2. apply ------------------------------------------------------------------------------------


def test_children_are_applied_by_three_way_merge_with_update_operations(
    plane: ControlPlane, step: CompositeStep
) -> None:
    _profile(plane, "merge-me")
    step.sync(NS, "merge-me")
    created = _configmap(plane, "seccomp-merge-me")
    assert created is not None
    applied = json.loads(created["metadata"]["annotations"][LAST_APPLIED])
    assert applied["data"] == created["data"]
    assert applied["metadata"]["labels"] == created["metadata"]["labels"]
    assert {(f["manager"], f["operation"]) for f in created["metadata"]["managedFields"]} == {
        ("metacontroller", "Update")
    }

    # A label the answer never set (the admission policy lets only Metacontroller's identity
    # touch a profile's ConfigMap: another controller of Metacontroller, say a user's
    # decorator, could have added it).
    plane.kubectl(
        "label",
        "configmap",
        "seccomp-merge-me",
        "-n",
        NS,
        "someone-else=was-here",
        *METACONTROLLER,
    )
    _profile(
        plane,
        "merge-me",
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
        },
    )
    step.sync(NS, "merge-me")
    updated = _configmap(plane, "seccomp-merge-me")
    assert updated is not None
    assert updated["data"] != created["data"]
    assert (
        updated["metadata"]["labels"]["someone-else"] == "was-here"
    )  # not in the last applied: kept
    assert json.loads(updated["metadata"]["annotations"][LAST_APPLIED])["data"] == updated["data"]
    assert all(f["operation"] == "Update" for f in updated["metadata"]["managedFields"])


# -- 3. generateSelector -------------------------------------------------------------------------


def test_children_are_claimed_by_the_controller_uid_label(
    plane: ControlPlane, step: CompositeStep
) -> None:
    uid = _profile(plane, "claims")["metadata"]["uid"]
    step.sync(NS, "claims")
    child = _configmap(plane, "seccomp-claims")
    assert child is not None
    assert child["metadata"]["labels"][CONTROLLER_UID] == uid

    # An orphan with the label is adopted, then deleted: the answer does not want it.
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "stray", "namespace": NS, "labels": {CONTROLLER_UID: uid}},
        }
    )
    # An owned child without the label is released, not deleted.
    owner = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "name": "claims",
        "uid": uid,
        "controller": True,
    }
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "unlabelled", "namespace": NS, "ownerReferences": [owner]},
        }
    )
    step.sync(NS, "claims")
    assert _configmap(plane, "stray") is None
    released = _configmap(plane, "unlabelled")
    assert released is not None
    assert not released["metadata"].get("ownerReferences")


# -- 4. requests ---------------------------------------------------------------------------------


def test_request_has_every_group_even_empty_and_the_whole_parent(
    plane: ControlPlane, step: CompositeStep
) -> None:
    _profile(plane, "asks")
    step.hooks.keep_requests = True
    step.sync(NS, "asks")
    step.sync(NS, "asks")
    (_, first), (_, second) = [r for r in step.hooks.requests if r[0] == "sync"]
    assert first["children"] == {"ConfigMap.v1": {}}
    related = first["related"]
    assert related["Pod.v1"] == {}
    assert related[f"SecurityProfileNodeStatus.{GROUP}/v1alpha1"] == {}
    assert list(related[f"SecurityProfilesOperatorDaemon.{GROUP}/v1alpha1"]) == [
        f"{OPERATOR_NS}/spod"
    ]
    assert list(second["children"]["ConfigMap.v1"]) == [f"{NS}/seccomp-asks"]
    parent = second["parent"]
    assert parent["metadata"]["uid"] and parent["metadata"]["managedFields"]
    assert parent["status"]["status"] == "Pending"


def test_decorator_request_carries_what_is_attached(plane: ControlPlane, hook_server: str) -> None:
    step = DecoratorStep(plane, hook_server, DECORATOR)
    step.hooks.keep_requests = True
    step.sync("v1", "Namespace", None, OPERATOR_NS)
    step.sync("v1", "Namespace", None, OPERATOR_NS)
    first, second = (body for hook, body in step.hooks.requests if hook == "sync")
    configurations = "MutatingWebhookConfiguration.admissionregistration.k8s.io/v1"
    assert set(first["children"]) == {configurations}
    assert list(second["children"][configurations]) == ["spo-mutating-webhook-configuration"]
    assert set(first["related"]) == {  # the spod alone: a profile event does not sync it
        f"SecurityProfilesOperatorDaemon.{GROUP}/v1alpha1"
    }
    stored = plane.kubectl_json(
        "get", "mutatingwebhookconfiguration", "spo-mutating-webhook-configuration"
    )
    for hook in stored["webhooks"]:  # attached as computed: the Service route, no URL, no bundle
        assert set(hook["clientConfig"]) == {"service"}
        assert hook["clientConfig"]["service"]["name"] == "spo-webhook"


# -- 5. timing -----------------------------------------------------------------------------------


def test_finalizer_is_added_before_the_first_hook_call(
    plane: ControlPlane, step: CompositeStep
) -> None:
    _profile(plane, "first-call")
    step.hooks.keep_requests = True
    step.sync(NS, "first-call")
    hook, body = step.hooks.requests[-1]
    assert hook == "sync"
    assert FINALIZER in body["parent"]["metadata"]["finalizers"]


def test_customize_answer_is_cached_per_uid_and_generation(
    plane: ControlPlane, step: CompositeStep
) -> None:
    _profile(plane, "cached")
    step.sync(NS, "cached")
    step.sync(NS, "cached")  # status changed meanwhile: same generation
    assert step.hooks.stats.calls["customize"] == 1
    _profile(plane, "cached", {"defaultAction": "SCMP_ACT_ERRNO"})
    step.sync(NS, "cached")
    assert step.hooks.stats.calls["customize"] == 2
    assert step.hooks.stats.calls["sync"] == 3


def _report(plane: ControlPlane, profile: str, node: str, state: str) -> None:
    """A node status as nodesync writes it: the object, its ``status`` included (no status
    subresource)."""
    name = f"{profile}-{node}"
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "SecurityProfileNodeStatus",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {
                    "spo.x-k8s.io/profile-id": f"SeccompProfile-{profile}",
                    "spo.x-k8s.io/node-name": node,
                    "spo.x-k8s.io/profile-kind": "SeccompProfile",
                    "spo.x-k8s.io/profile-state": state,
                },
            },
            "nodeName": node,
            "status": state,
        }
    )


def test_loop_syncs_again_on_every_change_of_a_child_or_a_related_object(
    plane: ControlPlane, hook_server: str
) -> None:
    def status() -> str:
        found = plane.kubectl_json("get", PROFILES, "watched", "-n", NS).get("status") or {}
        return str(found.get("status"))

    with Metacontroller(api_for(plane), hook_server, [SECCOMP], workers=2) as loop:
        _profile(plane, "watched")
        until("the profile is Pending", lambda: _assert(status() == "Pending", status()))
        first = until(
            "its ConfigMap exists", lambda: _present(_configmap(plane, "seccomp-watched"))
        )
        loop.wait_idle()
        stats = loop.hooks_of("seccompprofile-controller").stats
        # The first answer may be asked for twice: a related object's event can look for its
        # parents while the first sync asks (Metacontroller's findRelatedParents calls the
        # customize hook for a parent whose answer is not cached); from then on it is cached.
        customized = stats.per_parent[("customize", f"{NS}/watched")]
        synced = stats.per_parent[("sync", f"{NS}/watched")]
        assert customized in (1, 2)

        # A child changes (deleted: only Metacontroller's identity may do it).
        plane.kubectl("delete", "configmap", "seccomp-watched", "-n", NS, *METACONTROLLER)
        again = until(
            "the ConfigMap is made again", lambda: _present(_configmap(plane, "seccomp-watched"))
        )
        assert again["metadata"]["uid"] != first["metadata"]["uid"]

        _report(plane, "watched", "node-a", "Installed")  # a related object changes
        until("the profile is Installed", lambda: _assert(status() == "Installed", status()))
        loop.wait_idle()
        loop.raise_errors(NS)
        assert stats.per_parent[("customize", f"{NS}/watched")] == customized
        assert stats.per_parent[("sync", f"{NS}/watched")] >= synced + 2


def test_loop_runs_every_controller_of_the_install(plane: ControlPlane, hook_server: str) -> None:
    with Metacontroller(api_for(plane), hook_server, controllers(), workers=1) as loop:
        _profile(plane, "everyone")
        until(
            "the profile has a ConfigMap", lambda: _present(_configmap(plane, "seccomp-everyone"))
        )
        loop.wait_idle()
        loop.raise_errors(NS)
        loop.raise_errors(OPERATOR_NS)
        loop.raise_errors("")  # the operator's Namespace: the decorator
        configuration = plane.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
        assert (
            configuration["metadata"]["annotations"]["metacontroller.k8s.io/decorator-controller"]
            == "spo-namespace-decorator"
        )
        # Profile events cost the decorator nothing: it syncs on the spod alone.
        decorator = loop.hooks_of("spo-namespace-decorator").stats
        decorator_syncs = decorator.calls["sync"]
        for index in range(3):
            _profile(plane, f"quiet-{index}")
            _report(plane, f"quiet-{index}", "node-a", "Installed")
        until(
            "the profiles have ConfigMaps",
            lambda: _present(_configmap(plane, "seccomp-quiet-2")),
        )
        loop.wait_idle()
        loop.raise_errors(NS)
        assert decorator.calls["sync"] == decorator_syncs
        spod = plane.kubectl_json(
            "get", f"securityprofilesoperatordaemons.{GROUP}", "spod", "-n", OPERATOR_NS
        )
        assert spod["status"]["observedGeneration"] == spod["metadata"]["generation"]
        daemonsets = plane.kubectl_json("get", "daemonsets", "-n", OPERATOR_NS)["items"]
        assert any(
            d["metadata"]["labels"].get(CONTROLLER_UID) == spod["metadata"]["uid"]
            for d in daemonsets
        )


def _assert(condition: bool, detail: object) -> None:
    assert condition, detail


def _present(found: dict[str, Any] | None) -> dict[str, Any]:
    assert found is not None
    return found
