"""nodesync's SELinux side against the real API server: ConfigMaps to .cil files to policies.

``python -m nodesync`` runs as a real process with a token of the installed
``spo-nodesync`` ServiceAccount, ``--selinux-dir`` a temporary drop directory and
``--selinuxd-socket`` the socket of the selinuxd stand-in of the node tests
(``tests/helpers/selinuxd_double.py``: selinuxd itself cannot be built here, see
``tests/helpers/selinux_env.py``). The stand-in installs with the real ``semodule``
into a private copy of the reference policy store (with udica's templates), so
an Error carries ``semodule``'s own message. Its installs can be held, which
makes the Pending state observable without a race.

The ConfigMaps are shaped like the SELinux hooks' children (the CIL made by the
hooks' own translation), owned by real SelinuxProfile / RawSelinuxProfile
objects. Seccomp profiles live in the same namespace at the same time: neither
side's reporter may touch the other's node statuses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks.api import GROUP
from hooks.api.configmaps import (
    SECCOMP_KEY,
    SECCOMP_KIND,
    SELINUX_KEY,
    configmap_metadata,
    configmap_name,
)
from hooks.api.nodestatuslabels import PROFILE_KIND_LABEL, PROFILE_STATE_LABEL
from hooks.api.rawselinuxprofile import RawSelinuxProfile
from hooks.api.selinuxprofile import SelinuxProfile
from hooks.cluster.selinux.translation import translate
from nodesync.selinux.batch import SemoduleInstaller
from tests.helpers.controlplane import METACONTROLLER, ControlPlane
from tests.helpers.nodesync_process import NODE, NodeSync, eventually, node_status
from tests.helpers.selinux_env import copy_store, find_semodule, install_base, selinuxd_unavailable
from tests.helpers.selinuxd_double import SelinuxdDouble

pytestmark = pytest.mark.e2e
NS = "nodesync-selinux-e2e"
OPERATOR_NS = "security-profiles-operator"
SEMODULE_DEADLINE = 300.0  # seconds: every semodule run relinks the whole policy

WEB_SPEC = {
    "inherit": [{"kind": "System", "name": "container"}],
    "allow": {"http_port_t": {"tcp_socket": ["name_bind"]}},
}
TYPO_POLICY = "(blockinherit container)\n(allow process http_prot_t (tcp_socket (name_bind)))\n"
SECCOMP_LOG = '{"defaultAction":"SCMP_ACT_LOG"}'


# -- the node: a policy store, the selinuxd stand-in, nodesync ------------------------------------


class Gate:
    """Holds the stand-in's installs while closed (a policy then stays Pending)."""

    def __init__(self, installer: SemoduleInstaller) -> None:
        self.installer = installer
        self.open = threading.Event()
        self.open.set()

    def install(self, path: Path) -> tuple[bool, str]:
        self.open.wait(SEMODULE_DEADLINE)
        return self.installer.transaction([path])

    def remove(self, policy: str) -> tuple[bool, str]:
        return self.installer.remove([policy])


class Node:
    def __init__(self, work: Path, installer: SemoduleInstaller, double: SelinuxdDouble) -> None:
        self.work = work
        self.installer = installer
        self.double = double
        self.drop = double.drop_dir
        self.agent: NodeSync | None = None
        self.starts = 0

    def cil(self, policy: str) -> Path:
        return self.drop / f"{policy}.cil"

    def start(self, plane: ControlPlane) -> NodeSync:
        kubeconfig = plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", NODE)
        extra = [
            "--selinux-dir",
            str(self.drop),
            "--selinuxd-socket",
            str(self.double.socket_path),
            "--selinux-poll-interval",
            "0.2",
        ]
        self.starts += 1
        log = self.work / f"nodesync-{self.starts}.log"
        agent = NodeSync(kubeconfig, self.work / "kubelet", log, extra)
        agent.start()

        def ready() -> None:
            try:
                code, body = agent.get("/readyz")
            except OSError as error:  # not listening yet
                raise AssertionError(str(error)) from None
            assert code == 200, f"/readyz: {code} {body}"

        eventually("nodesync ready", ready, agent)
        self.agent = agent
        return agent


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    yield installed
    installed.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def gate_and_node(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gate, Node]]:
    semodule = find_semodule()
    work = tmp_path_factory.mktemp("selinux-node")
    root = copy_store(work / "root")
    install_base(root, semodule, work / "base-modules")
    installer = SemoduleInstaller(semodule=semodule, root=root, reload=False)
    reason = selinuxd_unavailable()
    if reason is not None:
        print(f"selinuxd cannot be built here, using the stand-in: {reason}")
    gate = Gate(installer)
    double = SelinuxdDouble(
        work / "selinuxd.sock", work / "selinux.d", install=gate.install, remove=gate.remove
    ).start()
    node = Node(work, installer, double)
    try:
        node.start(plane)
        yield gate, node
    finally:
        gate.open.set()
        if (
            node.agent is not None
            and node.agent.proc is not None
            and node.agent.proc.poll() is None
        ):
            node.agent.stop(timeout=30)
        double.stop()


@pytest.fixture
def gate(gate_and_node: tuple[Gate, Node]) -> Iterator[Gate]:
    yield gate_and_node[0]
    gate_and_node[0].open.set()


@pytest.fixture
def node(gate_and_node: tuple[Gate, Node]) -> Node:
    return gate_and_node[1]


def agent_of(node: Node) -> NodeSync:
    assert node.agent is not None
    return node.agent


# -- objects ---------------------------------------------------------------------------------------


def make_profile(plane: ControlPlane, kind: str, version: str, name: str, spec: Any) -> str:
    """A real profile object (nothing reconciles it here); returns its uid."""
    plane.apply(
        {
            "apiVersion": f"{GROUP}/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )
    got = plane.kubectl_json("get", f"{kind.lower()}s.{GROUP}", name, "-n", NS)
    return str(got["metadata"]["uid"])


def put_child(
    plane: ControlPlane, kind: str, version: str, name: str, uid: str, key: str, data: str
) -> None:
    """The hook's child ConfigMap of the profile, owned by it as Metacontroller owns it."""
    metadata = configmap_metadata(kind, NS, name)
    metadata["ownerReferences"] = [
        {
            "apiVersion": f"{GROUP}/{version}",
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    plane.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {key: data}},
        who=METACONTROLLER,
    )


def selinux_profile(plane: ControlPlane, name: str, spec: dict[str, Any]) -> tuple[str, str]:
    """A SelinuxProfile and its child; returns (uid, the CIL the hooks made of it)."""
    uid = make_profile(plane, "SelinuxProfile", "v1alpha2", name, spec)
    model = SelinuxProfile.model_validate(
        {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": "SelinuxProfile",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )
    cil = translate(model)
    put_child(plane, "SelinuxProfile", "v1alpha2", name, uid, SELINUX_KEY, cil)
    return uid, cil


def raw_selinux_profile(plane: ControlPlane, name: str, policy: str) -> tuple[str, str]:
    spec = {"policy": policy}
    uid = make_profile(plane, "RawSelinuxProfile", "v1alpha2", name, spec)
    model = RawSelinuxProfile.model_validate(
        {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": "RawSelinuxProfile",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )
    cil = translate(model)
    put_child(plane, "RawSelinuxProfile", "v1alpha2", name, uid, SELINUX_KEY, cil)
    return uid, cil


def seccomp_profile(plane: ControlPlane, name: str) -> str:
    uid = make_profile(plane, "SeccompProfile", "v1beta1", name, {"defaultAction": "SCMP_ACT_LOG"})
    put_child(plane, SECCOMP_KIND, "v1beta1", name, uid, SECCOMP_KEY, SECCOMP_LOG)
    return uid


def delete_child(plane: ControlPlane, kind: str, name: str) -> None:
    plane.kubectl("delete", "configmap", configmap_name(kind, name), "-n", NS, *METACONTROLLER)


def events_of(plane: ControlPlane, name: str) -> list[str]:
    items = plane.kubectl_json(
        "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [str(e["reason"]) for e in items if e["source"].get("host") == NODE]


# -- checks ----------------------------------------------------------------------------------------


def status_is(
    plane: ControlPlane, name: str, kind: str, state: str, words: str | None = None
) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        status = node_status(plane, NS, name)
        assert status is not None, f"no node status for {name}"
        assert status.get("status") == state, f"{name}: node status is {status.get('status')!r}"
        labels = status["metadata"]["labels"]
        assert labels[PROFILE_STATE_LABEL] == state
        assert labels[PROFILE_KIND_LABEL] == kind
        assert status["nodeName"] == NODE
        if words is None:
            assert "message" not in status or state == "Pending", status.get("message")
        else:
            assert words in str(status.get("message")), f"message: {status.get('message')!r}"
        return status

    return check


def gone(plane: ControlPlane, node: Node, name: str, policy: str) -> Callable[[], None]:
    def check() -> None:
        assert not node.cil(policy).exists(), f"{node.cil(policy)} still there"
        assert node_status(plane, NS, name) is None, f"node status of {name} still there"

    return check


def version_of(plane: ControlPlane, name: str) -> str:
    status = node_status(plane, NS, name)
    assert status is not None, f"no node status for {name}"
    return str(status["metadata"]["resourceVersion"])


# -- tests -----------------------------------------------------------------------------------------


def test_a_policy_goes_pending_then_installed_into_the_store(
    plane: ControlPlane, gate: Gate, node: Node
) -> None:
    agent = agent_of(node)
    gate.open.clear()  # selinuxd is busy: the policy waits
    uid, cil = selinux_profile(plane, "web", WEB_SPEC)
    policy = f"web_{NS}"

    def written() -> None:
        assert node.cil(policy).exists(), f"{node.cil(policy)} missing"
        assert node.cil(policy).read_text() == cil

    eventually("web.cil written", written, agent)
    pending = eventually("web Pending", status_is(plane, "web", "SelinuxProfile", "Pending"), agent)
    owners = pending["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in owners] == [
        ("SelinuxProfile", "web", uid, False)
    ]
    assert policy not in node.installer.installed()

    gate.open.set()
    eventually(
        "web Installed",
        status_is(plane, "web", "SelinuxProfile", "Installed"),
        agent,
        timeout=SEMODULE_DEADLINE,
    )
    assert policy in node.installer.installed()
    assert node.double.statuses()[policy].status == "Installed"

    def both_events() -> None:
        assert events_of(plane, "web") == ["SelinuxPolicyPending", "InstalledSelinuxPolicy"]

    eventually("an event for each state", both_events, agent)


def test_a_broken_policy_is_in_error_with_semodules_message(
    plane: ControlPlane, gate: Gate, node: Node
) -> None:
    agent = agent_of(node)
    _, cil = raw_selinux_profile(plane, "typo", TYPO_POLICY)
    policy = f"typo_{NS}"
    status = eventually(
        "typo in Error",
        status_is(plane, "typo", "RawSelinuxProfile", "Error", "Failed to resolve allow statement"),
        agent,
        timeout=SEMODULE_DEADLINE,
    )
    assert policy in str(status["message"])  # semodule names the module that failed
    assert node.cil(policy).read_text() == cil  # the file is there: selinuxd refused it
    assert policy not in node.installer.installed()

    delete_child(plane, "RawSelinuxProfile", "typo")
    eventually("typo gone", gone(plane, node, "typo", policy), agent)


def test_deletion_removes_the_file_the_module_and_the_node_status(
    plane: ControlPlane, gate: Gate, node: Node
) -> None:
    agent = agent_of(node)
    selinux_profile(plane, "brief", WEB_SPEC)
    policy = f"brief_{NS}"
    eventually(
        "brief Installed",
        status_is(plane, "brief", "SelinuxProfile", "Installed"),
        agent,
        timeout=SEMODULE_DEADLINE,
    )
    assert policy in node.installer.installed()
    delete_child(plane, "SelinuxProfile", "brief")
    eventually("brief gone", gone(plane, node, "brief", policy), agent)

    def uninstalled() -> None:
        assert policy not in node.double.statuses(), "selinuxd still knows the policy"

    eventually("brief removed by selinuxd", uninstalled, agent, timeout=SEMODULE_DEADLINE)
    assert policy not in node.installer.installed()


def test_seccomp_and_selinux_reporters_leave_each_other_alone(
    plane: ControlPlane, gate: Gate, node: Node
) -> None:
    agent = agent_of(node)
    seccomp_profile(plane, "calm")
    selinux_profile(plane, "neighbour", WEB_SPEC)
    eventually("calm Installed", status_is(plane, "calm", SECCOMP_KIND, "Installed"), agent)
    eventually(
        "neighbour Installed",
        status_is(plane, "neighbour", "SelinuxProfile", "Installed"),
        agent,
        timeout=SEMODULE_DEADLINE,
    )
    assert (agent.kubelet / "seccomp/operator" / NS / "calm.json").read_text() == SECCOMP_LOG
    assert not node.cil("calm_" + NS).exists()  # a seccomp profile is no SELinux policy
    seccomp_version = version_of(plane, "calm")
    selinux_version = version_of(plane, "neighbour")

    # A restart re-lists both kinds; each reporter prunes the statuses of its own kinds only.
    assert agent.stop(timeout=30) == 0, agent.tail()
    restarted = node.start(plane)

    def relisted() -> None:
        assert restarted.count("converged ") >= 2, "both sides have not converged yet"

    eventually("both sides relisted", relisted, restarted)
    assert version_of(plane, "calm") == seccomp_version
    assert version_of(plane, "neighbour") == selinux_version

    # Deleting the SELinux profile's ConfigMap leaves the seccomp status as it was ...
    delete_child(plane, "SelinuxProfile", "neighbour")
    eventually("neighbour gone", gone(plane, node, "neighbour", f"neighbour_{NS}"), restarted)
    assert version_of(plane, "calm") == seccomp_version
    # ... and the other way round.
    selinux_profile(plane, "neighbour", WEB_SPEC)
    eventually(
        "neighbour back",
        status_is(plane, "neighbour", "SelinuxProfile", "Installed"),
        restarted,
        timeout=SEMODULE_DEADLINE,
    )
    selinux_version = version_of(plane, "neighbour")
    delete_child(plane, SECCOMP_KIND, "calm")

    def calm_gone() -> None:
        assert node_status(plane, NS, "calm") is None, "calm's node status still there"

    eventually("calm gone", calm_gone, restarted)
    assert version_of(plane, "neighbour") == selinux_version
    statuses = plane.kubectl_json("get", f"securityprofilenodestatuses.{GROUP}", "-n", NS)["items"]
    kinds = {s["metadata"]["name"]: s["metadata"]["labels"][PROFILE_KIND_LABEL] for s in statuses}
    assert kinds.get(f"neighbour-{NODE}") == "SelinuxProfile"
    assert f"calm-{NODE}" not in kinds


def test_health_and_a_clean_stop_with_both_watchers(
    plane: ControlPlane, gate: Gate, node: Node
) -> None:
    agent = agent_of(node)
    assert agent.get("/healthz") == (200, "ok\n")
    assert agent.get("/readyz") == (200, "ok\n")
    records = agent.records()
    assert any("SELinux policies go to" in str(r.get("msg")) for r in records), agent.tail()
    code = agent.stop(timeout=30)  # both watches idle: SIGTERM must end both
    assert code == 0, f"nodesync exit code {code}\n{agent.tail()}"
    assert "Traceback" not in agent.log.read_text(), agent.tail(200)
