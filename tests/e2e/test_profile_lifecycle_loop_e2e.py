"""A SeccompProfile's whole life with the emulated Metacontroller running in the background,
nodesync as a real process, and (where a test says so) the garbage collector's stand-in.

Real Metacontroller never deletes the children of a parent whose finalize hook answered
``finalized: true``: the garbage collector does, through their owner references (0.6 to
0.8 s on a real cluster). These tests pin what the node sees meanwhile, and what a profile
re-created under the same name meanwhile gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.cluster.seccomp.oci import encode, runtime_profile
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_common import api_for, collector_api_for
from tests.helpers.metacontroller_loop import Metacontroller
from tests.helpers.nodesync_process import NODE, NodeSync, eventually, node_status
from tests.helpers.stand_ins import GarbageCollectorStandIn

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NS = "lifecycle-loop-e2e"
OPERATOR_NS = "security-profiles-operator"
PROFILES = f"seccompprofiles.{GROUP}"
SECCOMP = yaml.safe_load(
    (REPO / "metacontroller" / "base" / "seccompprofile-controller.yaml").read_text()
)
LOG = {"defaultAction": "SCMP_ACT_LOG"}
ALLOW = {"defaultAction": "SCMP_ACT_ALLOW"}


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    yield installed
    installed.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def nodesync(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSync]:
    kubeconfig = plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", NODE)
    work = tmp_path_factory.mktemp("lifecycle")
    agent = NodeSync(kubeconfig, work / "kubelet", work / "nodesync.log")
    agent.start()
    try:

        def ready() -> None:
            try:
                code, body = agent.get("/readyz")
            except OSError as error:
                raise AssertionError(str(error)) from None
            assert code == 200, f"/readyz: {code} {body}"

        eventually("nodesync ready", ready, agent)
        yield agent
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop(timeout=30)


@pytest.fixture
def loop(plane: ControlPlane, hook_server: str) -> Iterator[Metacontroller]:
    with Metacontroller(api_for(plane), hook_server, [SECCOMP], workers=2) as running:
        yield running
        running.raise_errors(NS)


def _profile(plane: ControlPlane, name: str, spec: dict[str, Any]) -> str:
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )
    return str(plane.kubectl_json("get", PROFILES, name, "-n", NS)["metadata"]["uid"])


def _status(plane: ControlPlane, name: str) -> str | None:
    got = plane.kubectl("get", PROFILES, name, "-n", NS, "-o", "json", check=False)
    if got.returncode != 0:
        return None
    return (json.loads(got.stdout).get("status") or {}).get("status")


def _installed(
    plane: ControlPlane, agent: NodeSync, name: str, spec: dict[str, Any], uid: str
) -> None:
    path = agent.file(NS, name)
    assert path.exists(), f"{path} missing"
    assert path.read_text() == encode(runtime_profile(SeccompProfileSpec.model_validate(spec)))
    status = node_status(plane, NS, name)
    assert status is not None and status.get("status") == "Installed", status
    assert [o["uid"] for o in status["metadata"]["ownerReferences"]] == [uid]
    assert _status(plane, name) == "Installed", _status(plane, name)


def test_deleted_profile_stays_on_the_node_until_the_garbage_collector(
    plane: ControlPlane, nodesync: NodeSync, loop: Metacontroller
) -> None:
    uid = _profile(plane, "short-lived", LOG)
    eventually(
        "short-lived installed",
        lambda: _installed(plane, nodesync, "short-lived", LOG, uid),
        nodesync,
    )

    plane.kubectl("delete", PROFILES, "short-lived", "-n", NS, "--wait=false")
    eventually(
        "the profile is gone", lambda: _assert(_status(plane, "short-lived") is None), nodesync
    )
    loop.wait_idle()
    # Nothing but a garbage collector removes the ConfigMap: the node keeps the file and reports it.
    assert nodesync.file(NS, "short-lived").exists()
    left = node_status(plane, NS, "short-lived")
    assert left is not None and left.get("status") == "Installed"

    collected = GarbageCollectorStandIn(
        collector_api_for(plane),
        [("v1", "configmaps"), (f"{GROUP}/v1alpha1", "securityprofilenodestatuses")],
    ).collect()
    assert f"ConfigMap {NS}/seccomp-short-lived" in collected

    def removed() -> None:
        assert not nodesync.file(NS, "short-lived").exists()
        assert node_status(plane, NS, "short-lived") is None

    eventually("the node forgot it", removed, nodesync)


def test_profile_recreated_while_the_old_configmap_waits_gets_its_own(
    plane: ControlPlane, nodesync: NodeSync, loop: Metacontroller
) -> None:
    """The old ConfigMap (owned by the old uid) blocks the name until the garbage collector
    deletes it; then the new profile must get its ConfigMap without any other event."""
    old = _profile(plane, "reborn", LOG)
    eventually(
        "reborn installed", lambda: _installed(plane, nodesync, "reborn", LOG, old), nodesync
    )
    plane.kubectl("delete", PROFILES, "reborn", "-n", NS, "--wait=false")
    eventually(
        "the old profile is gone", lambda: _assert(_status(plane, "reborn") is None), nodesync
    )
    new = _profile(plane, "reborn", ALLOW)
    loop.wait_idle()
    configmap = plane.kubectl_json("get", "configmap", "seccomp-reborn", "-n", NS)
    assert [o["uid"] for o in configmap["metadata"]["ownerReferences"]] == [
        old
    ]  # still the old one

    # The garbage collector deletes the dependents in no set order: the worst one here, the
    # node statuses first (the new profile syncs, and cannot create its ConfigMap), then,
    # once all is quiet, the ConfigMap.
    api = collector_api_for(plane)
    GarbageCollectorStandIn(api, [(f"{GROUP}/v1alpha1", "securityprofilenodestatuses")]).collect()
    loop.wait_idle()
    assert GarbageCollectorStandIn(api, [("v1", "configmaps")]).collect() == [
        f"ConfigMap {NS}/seccomp-reborn"
    ]
    eventually(
        "the new profile installed",
        lambda: _installed(plane, nodesync, "reborn", ALLOW, new),
        nodesync,
    )


def _assert(condition: bool) -> None:
    assert condition


def test_with_the_garbage_collector_running_the_node_forgets_a_deleted_profile(
    plane: ControlPlane, nodesync: NodeSync, hook_server: str
) -> None:
    api = api_for(plane)
    collector = GarbageCollectorStandIn(
        collector_api_for(plane),
        [("v1", "configmaps"), (f"{GROUP}/v1alpha1", "securityprofilenodestatuses")],
    )
    with Metacontroller(
        api, hook_server, [SECCOMP], workers=2, garbage_collector=collector
    ) as loop:
        uid = _profile(plane, "collected", LOG)
        eventually(
            "collected installed",
            lambda: _installed(plane, nodesync, "collected", LOG, uid),
            nodesync,
        )
        plane.kubectl("delete", PROFILES, "collected", "-n", NS, "--wait=false")

        def forgotten() -> None:
            assert _status(plane, "collected") is None
            assert not nodesync.file(NS, "collected").exists()
            assert node_status(plane, NS, "collected") is None

        eventually("the node forgot the deleted profile", forgotten, nodesync)
        assert f"ConfigMap {NS}/seccomp-collected" in collector.deleted
        loop.raise_errors(NS)
