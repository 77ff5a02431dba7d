"""The single-namespace install against the real API server and its authorizer.

The Roles and RoleBindings come from ``metacontroller/namespaced/`` rendered
through the overlay its comment documents for choosing another namespace (here
the watched namespace of this test), each bound to a fresh ServiceAccount instead
of ``spo-nodesync`` and ``spo-log-enricher``, so no other right can help.
``python -m nodesync --namespace``
then runs with that ServiceAccount's token, with SELinux on (the selinuxd
stand-in in its content mode: a policy with ``BROKEN`` in it fails, others are
accepted without ``semodule``), so both watchers prove they stay in the
namespace. The authorizer says what the ServiceAccount may not do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.configmaps import SECCOMP_KEY, SECCOMP_KIND, SELINUX_KEY, configmap_metadata
from hooks.cluster.spod import daemonset
from tests.helpers.controlplane import METACONTROLLER, ControlPlane
from tests.helpers.hookserver import free_port, serving
from tests.helpers.nodesync_process import NodeSync, eventually, node_status
from tests.helpers.selinuxd_double import SelinuxdDouble

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "security-profiles-operator"
WATCHED = "spo-watched-e2e"
OTHER = "spo-unwatched-e2e"
ACCOUNT = "nodesync-namespaced-e2e"
WHO = ["--as", f"system:serviceaccount:{OPERATOR_NS}:{ACCOUNT}"]
ENRICHER_ACCOUNT = "log-enricher-namespaced-e2e"
ENRICHER = ["--as", f"system:serviceaccount:{OPERATOR_NS}:{ENRICHER_ACCOUNT}"]
WEBHOOK_ACCOUNT = "webhook-namespaced-e2e"
WEBHOOK = ["--as", f"system:serviceaccount:{OPERATOR_NS}:{WEBHOOK_ACCOUNT}"]
BOUND_TO = {
    "spo-nodesync": ACCOUNT,
    "spo-log-enricher": ENRICHER_ACCOUNT,
    "spo-webhook": WEBHOOK_ACCOUNT,
}
STATUSES = f"securityprofilenodestatuses.{GROUP}"
LOG = '{"defaultAction":"SCMP_ACT_LOG"}'


class ContentInstalls:
    """The stand-in's installer: accepts a policy unless it says BROKEN (no semodule)."""

    def __init__(self) -> None:
        self.installed: set[str] = set()

    def install(self, path: Path) -> tuple[bool, str]:
        if b"BROKEN" in path.read_bytes():
            return False, f"Failed to resolve BROKEN at {path}:2\nsemodule:  Failed!"
        self.installed.add(path.stem)
        return True, ""

    def remove(self, policy: str) -> tuple[bool, str]:
        self.installed.discard(policy)
        return True, ""


def render_rbac(plane: ControlPlane, folder: Path) -> list[dict[str, Any]]:
    """The Roles and RoleBindings of the documented overlay, watching WATCHED: nodesync's
    bound to ACCOUNT, the log enricher's to ENRICHER_ACCOUNT."""
    lines = (REPO / "metacontroller" / "namespaced" / "kustomization.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "my-install/kustomization.yaml" in line)
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[len("#   ") :])
    text = "\n".join(block) + "\n"
    assert "team-a" in text and "../metacontroller/namespaced" in text
    overlay = folder / "my-install"
    overlay.mkdir()
    relative = os.path.relpath(REPO / "metacontroller" / "namespaced", overlay)
    text = text.replace("../metacontroller/namespaced", relative).replace("team-a", WATCHED)
    (overlay / "kustomization.yaml").write_text(text)
    done = plane.kubectl("kustomize", str(overlay))
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    [spod] = [doc for doc in docs if doc["kind"] == "SecurityProfilesOperatorDaemon"]
    assert spod["metadata"]["annotations"][daemonset.WATCH_NAMESPACE_ANNOTATION] == WATCHED
    [webhook] = [
        doc
        for doc in docs
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "spo-webhook"
    ]
    env = {
        e["name"]: e.get("value")
        for e in webhook["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["WATCH_NAMESPACE"] == WATCHED
    rbac = [doc for doc in docs if doc["kind"] in ("Role", "RoleBinding")]
    assert sorted(
        (doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]) for doc in rbac
    ) == [
        (kind, WATCHED, name)
        for kind in ("Role", "RoleBinding")
        for name in ("spo-log-enricher", "spo-nodesync", "spo-webhook")
    ]
    assert not [
        doc
        for doc in docs
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding")
        and doc["metadata"]["name"] in BOUND_TO
    ]
    for doc in rbac:
        account = BOUND_TO[doc["metadata"]["name"]]
        doc["metadata"]["name"] = account
        if doc["kind"] == "RoleBinding":
            doc["roleRef"]["name"] = account
            [subject] = doc["subjects"]
            subject["name"] = account
    return rbac


@pytest.fixture(scope="module")
def plane(
    installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    for namespace in (WATCHED, OTHER):
        installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for doc in render_rbac(installed, tmp_path_factory.mktemp("overlay")):
        installed.apply(doc)
    yield installed
    for namespace in (WATCHED, OTHER):
        installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def node(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeSync, SelinuxdDouble, ContentInstalls]]:
    work = tmp_path_factory.mktemp("namespaced-node")
    installs = ContentInstalls()
    double = SelinuxdDouble(
        work / "selinuxd.sock", work / "selinux.d", install=installs.install, remove=installs.remove
    ).start()
    kubeconfig = plane.service_account_kubeconfig(OPERATOR_NS, ACCOUNT)
    extra = [
        "--namespace",
        WATCHED,
        "--selinux-dir",
        str(double.drop_dir),
        "--selinuxd-socket",
        str(double.socket_path),
        "--selinux-poll-interval",
        "0.2",
    ]
    agent = NodeSync(kubeconfig, work / "kubelet", work / "nodesync.log", extra)
    agent.start()
    try:

        def ready() -> None:
            try:
                code, body = agent.get("/readyz")
            except OSError as error:
                raise AssertionError(str(error)) from None
            assert code == 200, f"/readyz: {code} {body}"

        eventually("nodesync ready", ready, agent)
        yield agent, double, installs
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop(timeout=30)
        double.stop()


def put(plane: ControlPlane, namespace: str, kind: str, name: str, key: str, data: str) -> None:
    version = "v1beta1" if kind == SECCOMP_KIND else "v1alpha2"
    spec: dict[str, Any] = (
        {"defaultAction": "SCMP_ACT_LOG"}
        if kind == SECCOMP_KIND
        else {"policy": "(blockinherit container)\n"}
    )
    plane.apply(
        {
            "apiVersion": f"{GROUP}/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    uid = plane.kubectl_json("get", f"{kind.lower()}s.{GROUP}", name, "-n", namespace)["metadata"][
        "uid"
    ]
    metadata = configmap_metadata(kind, namespace, name)
    metadata["ownerReferences"] = [
        {
            "apiVersion": f"{GROUP}/{version}",
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": True,
        }
    ]
    plane.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {key: data}},
        who=METACONTROLLER,
    )


def status_is(plane: ControlPlane, name: str, state: str, words: str = "") -> Callable[[], None]:
    def check() -> None:
        status = node_status(plane, WATCHED, name)
        assert status is not None, f"no node status for {name}"
        assert status.get("status") == state, f"{name} is {status.get('status')!r}"
        assert words in str(status.get("message", "")), status.get("message")

    return check


def can(plane: ControlPlane, verb: str, resource: str, *scope: str, who: list[str] = WHO) -> bool:
    result = plane.kubectl("auth", "can-i", verb, resource, *who, *scope, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_nodesync_works_in_its_namespace_and_sees_nothing_elsewhere(
    plane: ControlPlane, node: tuple[NodeSync, SelinuxdDouble, ContentInstalls]
) -> None:
    agent, double, installs = node
    # The other namespace first: had nodesync watched it, these would be done before the rest.
    put(plane, OTHER, SECCOMP_KIND, "elsewhere", SECCOMP_KEY, LOG)
    put(
        plane,
        OTHER,
        "RawSelinuxProfile",
        "elsewhere-policy",
        SELINUX_KEY,
        "(block elsewhere-policy_x)\n",
    )
    put(plane, WATCHED, SECCOMP_KIND, "here", SECCOMP_KEY, LOG)
    put(plane, WATCHED, "RawSelinuxProfile", "good", SELINUX_KEY, f"(block good_{WATCHED})\n")
    put(plane, WATCHED, "RawSelinuxProfile", "bad", SELINUX_KEY, f"(block bad_{WATCHED} BROKEN)\n")

    eventually("here Installed", status_is(plane, "here", "Installed"), agent)
    assert (agent.kubelet / "seccomp/operator" / WATCHED / "here.json").read_text() == LOG
    eventually("good Installed", status_is(plane, "good", "Installed"), agent)
    eventually("bad in Error", status_is(plane, "bad", "Error", "Failed to resolve BROKEN"), agent)
    assert f"good_{WATCHED}" in installs.installed
    assert (double.drop_dir / f"good_{WATCHED}.cil").is_file()

    # Nothing of the other namespace: no file, no policy, no node status.
    assert not (agent.kubelet / "seccomp/operator" / OTHER).exists()
    assert not (double.drop_dir / f"elsewhere-policy_{OTHER}.cil").exists()
    listed = plane.kubectl_json("get", STATUSES, "-n", OTHER)["items"]
    assert listed == []
    # And no request was refused: both watchers used the namespaced paths.
    assert agent.count("API server: ") == 0, agent.tail()
    assert "forbidden" not in agent.log.read_text().lower(), agent.tail()


def test_the_service_account_may_do_nothing_outside_its_namespace(plane: ControlPlane) -> None:
    assert can(plane, "list", "configmaps", "-n", WATCHED)
    assert can(plane, "watch", "configmaps", "-n", WATCHED)
    assert can(plane, "create", STATUSES, "-n", WATCHED)
    assert can(plane, "patch", STATUSES, "-n", WATCHED)
    assert can(plane, "create", "events", "-n", WATCHED)
    assert not can(plane, "list", "configmaps", "--all-namespaces")
    assert not can(plane, "watch", "configmaps", "--all-namespaces")
    assert not can(plane, "list", "configmaps", "-n", OTHER)
    assert not can(plane, "list", "configmaps", "-n", OPERATOR_NS)
    assert not can(plane, "list", STATUSES, "--all-namespaces")
    assert not can(plane, "create", STATUSES, "-n", OTHER)
    assert not can(plane, "create", "events", "-n", OTHER)
    assert not can(plane, "get", "secrets", "-n", WATCHED)
    # Really refused, not only said so.
    refused = plane.kubectl("get", "configmaps", "--all-namespaces", *WHO, check=False)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr


def test_the_log_enricher_may_record_in_its_namespace_only(plane: ControlPlane) -> None:
    profiles = f"seccompprofiles.{GROUP}"
    recordings = f"profilerecordings.{GROUP}"
    for verb, resource in (
        ("list", "pods"),
        ("watch", "pods"),
        ("create", profiles),
        ("create", f"selinuxprofiles.{GROUP}"),
        ("delete", profiles),
        ("watch", recordings),
        ("create", "events"),
    ):
        assert can(plane, verb, resource, "-n", WATCHED, who=ENRICHER), (verb, resource)
        assert not can(plane, verb, resource, "-n", OTHER, who=ENRICHER), (verb, resource)
        assert not can(plane, verb, resource, "-n", OPERATOR_NS, who=ENRICHER), (verb, resource)
    assert not can(plane, "list", "pods", "--all-namespaces", who=ENRICHER)
    assert not can(plane, "list", recordings, "--all-namespaces", who=ENRICHER)
    assert not can(plane, "update", profiles, "-n", WATCHED, who=ENRICHER)
    assert not can(plane, "get", "secrets", "-n", WATCHED, who=ENRICHER)
    assert not can(plane, "list", "configmaps", "-n", WATCHED, who=ENRICHER)
    # Nor does either identity have the other's rights.
    assert not can(plane, "create", profiles, "-n", WATCHED)
    assert not can(plane, "list", "pods", "-n", WATCHED)
    assert not can(plane, "create", STATUSES, "-n", WATCHED, who=ENRICHER)


def test_without_namespace_nodesync_cannot_run_on_these_rights(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """The same ServiceAccount, cluster-wide: the API server refuses the list (the restriction
    is the RBAC's, not only nodesync's good manners)."""
    kubeconfig = plane.service_account_kubeconfig(OPERATOR_NS, ACCOUNT, create=False)
    agent = NodeSync(kubeconfig, tmp_path / "kubelet", tmp_path / "nodesync.log")
    agent.start()
    try:

        def refused() -> None:
            assert agent.count("API server: 403") >= 1, "no refused list yet"

        eventually("the cluster-wide list refused", refused, agent)
        code, _ = agent.get("/readyz")
        assert code == 503
    finally:
        assert agent.stop(timeout=30) == 0, agent.tail()


def test_the_webhook_may_read_its_tables_in_its_namespace_only(plane: ControlPlane) -> None:
    for resource in ("profilebindings", "profilerecordings", "seccompprofiles", "selinuxprofiles"):
        for verb in ("list", "watch"):
            assert can(plane, verb, f"{resource}.{GROUP}", "-n", WATCHED, who=WEBHOOK), resource
            assert not can(plane, verb, f"{resource}.{GROUP}", "-n", OTHER, who=WEBHOOK)
            assert not can(plane, verb, f"{resource}.{GROUP}", "--all-namespaces", who=WEBHOOK)
    assert not can(plane, "list", "pods", "-n", WATCHED, who=WEBHOOK)
    assert not can(plane, "get", "secrets", "-n", WATCHED, who=WEBHOOK)


def _webhook(plane: ControlPlane, *extra: str) -> list[str]:
    kubeconfig = plane.service_account_kubeconfig(OPERATOR_NS, WEBHOOK_ACCOUNT)
    return [
        sys.executable,
        "-m",
        "hooks.command.cli",
        "webhook",
        "--kubeconfig",
        str(kubeconfig),
        *extra,
    ]


def test_the_webhook_is_ready_on_these_rights_in_its_namespace_only(plane: ControlPlane) -> None:
    """``spo webhook --namespace`` lists and watches the namespace with a Role there and becomes
    ready; the same rights cluster-wide are refused, and it stays unready."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "KUBECONFIG")
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        serving(
            _webhook(plane, "--bind", f"127.0.0.1:{port}", "--namespace", WATCHED),
            base,
            env=env,
            cwd=REPO,
        ),
        urllib.request.urlopen(f"{base}/readyz", timeout=5) as response,
    ):
        assert response.status == 200
    port = free_port()
    process = subprocess.Popen(
        _webhook(plane, "--bind", f"127.0.0.1:{port}"),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        codes = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    codes.append(answer.status)
            except urllib.error.HTTPError as error:
                codes.append(error.code)
            except OSError:
                pass
            time.sleep(0.5)
        assert codes and set(codes) == {503}, codes
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert b"403" in stderr, stderr[-2000:]


def test_nodesync_refuses_a_bad_namespace(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nodesync", "--node-name", "n", "--namespace", "Not_A_Namespace"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "not a namespace name" in done.stderr
