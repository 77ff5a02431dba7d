"""A SeccompProfile's life through the real API server, with the hooks called as
Metacontroller would.

Node statuses are written here the way nodesync writes them (create, then the
status subresource); pods are created without a node (no scheduler runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_common import collector_api_for
from tests.helpers.metacontroller_step import CompositeStep
from tests.helpers.pod_usage import label_pods
from tests.helpers.stand_ins import GarbageCollectorStandIn

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NS = "team-e2e"


@pytest.fixture(scope="module")
def step(installed: ControlPlane, hook_server: str) -> Iterator[CompositeStep]:
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "seccompprofile-controller.yaml").read_text()
    )
    installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    yield CompositeStep(installed, hook_server, manifest)
    installed.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _profile(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _configmap(plane: ControlPlane, name: str) -> dict[str, Any] | None:
    got = plane.kubectl("get", "configmap", f"seccomp-{name}", "-n", NS, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def _report(
    plane: ControlPlane, profile: str, node: str, state: str, message: str | None = None
) -> None:
    """What nodesync does after installing (or failing to install) a profile on ``node``:
    the object with ``message`` and ``status`` (the kind has no status subresource)."""
    name = f"{profile}-{node}"
    status = {
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
        **({"message": message} if message else {}),
    }
    plane.apply(status)


def _status(plane: ControlPlane, name: str) -> dict[str, Any]:
    return dict(
        plane.kubectl_json("get", f"seccompprofiles.{GROUP}", name, "-n", NS).get("status") or {}
    )


def test_profile_goes_from_pending_to_installed(step: CompositeStep) -> None:
    plane = step.plane
    spec = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    plane.apply(_profile("deny-mkdir", spec))
    step.sync(NS, "deny-mkdir")
    status = _status(plane, "deny-mkdir")
    assert status["status"] == "Pending"
    assert status["localhostProfile"] == f"operator/{NS}/deny-mkdir.json"
    assert status["observedGeneration"] == 1
    configmap = _configmap(plane, "deny-mkdir")
    assert configmap is not None
    assert json.loads(configmap["data"]["profile.json"]) == spec
    assert configmap["metadata"]["ownerReferences"][0]["kind"] == "SeccompProfile"
    assert configmap["metadata"]["labels"]["spo.x-k8s.io/profile-kind"] == "SeccompProfile"

    _report(plane, "deny-mkdir", "node-a", "Installed")
    _report(plane, "deny-mkdir", "node-b", "Pending")
    step.sync(NS, "deny-mkdir")
    assert _status(plane, "deny-mkdir")["status"] == "InProgress"

    _report(plane, "deny-mkdir", "node-b", "Installed")
    step.sync(NS, "deny-mkdir")
    status = _status(plane, "deny-mkdir")
    assert status["status"] == "Installed"
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Available")

    # The same input again changes nothing, not even the condition's time.
    before = plane.kubectl_json("get", f"seccompprofiles.{GROUP}", "deny-mkdir", "-n", NS)
    step.sync(NS, "deny-mkdir")
    after = plane.kubectl_json("get", f"seccompprofiles.{GROUP}", "deny-mkdir", "-n", NS)
    assert after["status"] == before["status"]


def test_node_failure_is_reported_with_the_node_and_its_message(step: CompositeStep) -> None:
    plane = step.plane
    plane.apply(_profile("fails-somewhere", {"defaultAction": "SCMP_ACT_LOG"}))
    step.sync(NS, "fails-somewhere")
    _report(plane, "fails-somewhere", "node-a", "Installed")
    _report(plane, "fails-somewhere", "node-c", "Error", "seccomp is not supported on this node")
    step.sync(NS, "fails-somewhere")
    status = _status(plane, "fails-somewhere")
    assert status["status"] == "Error"
    assert "node-c: seccomp is not supported on this node" in status["conditions"][0]["message"]


def test_invalid_update_keeps_the_installed_configmap(step: CompositeStep) -> None:
    plane = step.plane
    good = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}],
    }
    plane.apply(_profile("keeps", good))
    step.sync(NS, "keeps")
    installed = _configmap(plane, "keeps")
    assert installed is not None
    bad = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "wirte"], "action": "SCMP_ACT_ALLOW"}],
    }
    plane.apply(_profile("keeps", bad))
    step.sync(NS, "keeps")
    status = _status(plane, "keeps")
    assert status["status"] == "Error"
    assert status["conditions"][0]["reason"] == "InvalidSeccompProfile"
    assert "wirte" in status["conditions"][0]["message"]
    kept = _configmap(plane, "keeps")
    assert kept is not None
    assert kept["data"] == installed["data"]
    assert kept["metadata"]["resourceVersion"] == installed["metadata"]["resourceVersion"]


def test_base_profile_is_merged_and_a_missing_one_named(step: CompositeStep) -> None:
    plane = step.plane
    plane.apply(
        _profile(
            "on-base",
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "baseProfileName": "the-base",
                "syscalls": [{"names": ["openat"], "action": "SCMP_ACT_ALLOW"}],
            },
        )
    )
    step.sync(NS, "on-base")
    status = _status(plane, "on-base")
    assert status["status"] == "Error"
    assert "SeccompProfile 'the-base' not found" in status["conditions"][0]["message"]
    assert _configmap(plane, "on-base") is None
    plane.apply(
        _profile(
            "the-base",
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["execve", "exit_group"], "action": "SCMP_ACT_ALLOW"}],
            },
        )
    )
    step.sync(NS, "on-base")
    configmap = _configmap(plane, "on-base")
    assert configmap is not None
    merged = json.loads(configmap["data"]["profile.json"])
    assert merged["syscalls"] == [
        {"action": "SCMP_ACT_ALLOW", "names": ["execve", "exit_group", "openat"]}
    ]


def test_disabled_profile_loses_its_configmap(step: CompositeStep) -> None:
    plane = step.plane
    plane.apply(_profile("switch", {"defaultAction": "SCMP_ACT_LOG"}))
    step.sync(NS, "switch")
    assert _configmap(plane, "switch") is not None
    plane.apply(_profile("switch", {"defaultAction": "SCMP_ACT_LOG", "disabled": True}))
    step.sync(NS, "switch")
    assert _status(plane, "switch")["status"] == "Disabled"
    assert _configmap(plane, "switch") is None


def test_deletion_waits_for_the_pods_that_use_the_profile(
    step: CompositeStep, hook_server: str
) -> None:
    plane = step.plane
    plane.apply(_profile("in-use", {"defaultAction": "SCMP_ACT_LOG"}))
    step.add_finalizer(NS, "in-use")
    step.sync(NS, "in-use")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "securityContext": {
                        "seccompProfile": {
                            "type": "Localhost",
                            "localhostProfile": f"operator/{NS}/in-use.json",
                        }
                    },
                }
            ]
        },
    }
    plane.apply(pod)
    label_pods(plane, hook_server, NS)  # spo-pod-usage, on the pod's creation
    step.sync(NS, "in-use")
    assert _status(plane, "in-use")["activeWorkloads"] == ["web"]

    plane.kubectl("delete", f"seccompprofiles.{GROUP}", "in-use", "-n", NS, "--wait=false")
    answer = step.sync(NS, "in-use")
    assert answer["finalized"] is False
    status = _status(plane, "in-use")
    assert status["status"] == "Terminating"
    assert _configmap(plane, "in-use") is not None  # still on the nodes while the pod runs

    plane.kubectl("delete", "pod", "web", "-n", NS, "--grace-period=0", "--force")
    answer = step.sync(NS, "in-use")
    assert answer["finalized"] is True
    gone = plane.kubectl("get", f"seccompprofiles.{GROUP}", "in-use", "-n", NS, check=False)
    assert "NotFound" in gone.stderr
    # Metacontroller leaves the ConfigMap to the garbage collector, which this control plane
    # lacks: its stand-in deletes it because its owner is gone.
    assert _configmap(plane, "in-use") is not None
    collector = GarbageCollectorStandIn(collector_api_for(plane), [("v1", "configmaps")])
    assert f"ConfigMap {NS}/seccomp-in-use" in collector.collect()
    assert _configmap(plane, "in-use") is None


def _set_allowed_syscalls(plane: ControlPlane, names: list[str] | None) -> None:
    patch = json.dumps({"spec": {"allowedSyscalls": names}})
    plane.kubectl(
        "patch",
        f"securityprofilesoperatordaemons.{GROUP}",
        "spod",
        "-n",
        "security-profiles-operator",
        "--type=merge",
        "-p",
        patch,
    )


def test_operator_policy_removes_a_profile_that_breaks_it(step: CompositeStep) -> None:
    plane = step.plane
    try:
        plane.apply(
            _profile(
                "tracer",
                {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["read", "ptrace"], "action": "SCMP_ACT_ALLOW"}],
                },
            )
        )
        step.sync(NS, "tracer")
        assert _configmap(plane, "tracer") is not None
        _set_allowed_syscalls(
            plane, ["read", "write", "exit_group", "openat"]
        )  # the installed spod
        step.sync(NS, "tracer")
        status = _status(plane, "tracer")
        assert status["status"] == "Error"
        assert status["conditions"][0]["reason"] == "DisallowedSyscalls"
        assert "ptrace" in status["conditions"][0]["message"]
        assert _configmap(plane, "tracer") is None  # the nodes remove it
        _set_allowed_syscalls(plane, ["read", "write", "exit_group", "openat", "ptrace"])
        step.sync(NS, "tracer")
        assert _status(plane, "tracer")["status"] == "Pending"
        assert _configmap(plane, "tracer") is not None
    finally:
        _set_allowed_syscalls(plane, None)
