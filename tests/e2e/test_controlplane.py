"""The e2e control plane itself: pinned versions, storage, CRDs, RBAC, teardown."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.controlplane import (
    ControlPlane,
    ControlPlaneStartError,
    pid_alive,
    pinned_versions,
)

pytestmark = pytest.mark.e2e


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(check: Callable[[], bool], *, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout}s: {what}")
        time.sleep(0.2)


def test_versions_are_the_pinned_ones(control_plane: ControlPlane) -> None:
    pinned = pinned_versions()
    version = control_plane.kubectl_json("version")
    assert version["serverVersion"]["gitVersion"] == pinned.kubernetes
    assert version["clientVersion"]["gitVersion"] == pinned.kubernetes
    assert control_plane.kubectl_path.parent == control_plane.bin_dir

    status, body = control_plane.get("/version")
    assert status == 200
    assert f'"gitVersion": "{pinned.kubernetes}"' in body

    etcd = subprocess.run(
        [str(control_plane.bin_dir / "etcd"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"etcd Version: {pinned.etcd.removeprefix('v')}\n" in etcd.stdout


def test_namespace_and_configmap_round_trip(control_plane: ControlPlane) -> None:
    ns = unique("cm")
    control_plane.kubectl("create", "namespace", ns)
    control_plane.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "profile", "namespace": ns, "labels": {"app": "e2e"}},
            "data": {"profile.json": '{"defaultAction": "SCMP_ACT_ERRNO"}'},
        }
    )

    got = control_plane.kubectl_json("get", "configmap", "profile", "-n", ns)
    assert got["data"] == {"profile.json": '{"defaultAction": "SCMP_ACT_ERRNO"}'}
    assert got["metadata"]["labels"] == {"app": "e2e"}
    assert got["metadata"]["uid"]
    names = control_plane.kubectl_json("get", "namespaces")["items"]
    assert ns in {item["metadata"]["name"] for item in names}
    missing = control_plane.kubectl("get", "configmap", "nope", "-n", ns, check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.example.com
spec:
  group: e2e.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
"""


def test_crd_becomes_established_and_is_served(control_plane: ControlPlane) -> None:
    control_plane.apply(CRD)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/widgets.e2e.example.com",
    )
    crd = control_plane.kubectl_json("get", "crd", "widgets.e2e.example.com")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"

    ns = unique("crd")
    control_plane.kubectl("create", "namespace", ns)
    widget = {
        "apiVersion": "e2e.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": ns},
        "spec": {"size": 3},
    }

    def stored() -> bool:  # discovery of a fresh CRD can lag a moment
        return (
            control_plane.kubectl(
                "apply",
                "--server-side",
                "-f",
                "-",
                input=json.dumps(widget),
                check=False,
            ).returncode
            == 0
        )

    eventually(stored, what="a Widget can be created")
    assert control_plane.kubectl_json("get", "widget", "w", "-n", ns)["spec"] == {"size": 3}
    # The schema is enforced: the apiserver validates custom resources.
    bad = dict(widget, metadata={"name": "bad", "namespace": ns}, spec={"size": 0})
    rejected = control_plane.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert rejected.returncode != 0
    assert "spec.size" in rejected.stderr


def _allow_get_secrets(control_plane: ControlPlane, ns: str, sa: str) -> None:
    control_plane.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "secret-getter", "namespace": ns},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "secret-getter", "namespace": ns},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "secret-getter",
                },
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
            },
        ]
    )


def test_rbac_is_enforced_for_an_impersonated_service_account(
    control_plane: ControlPlane,
) -> None:
    ns, other = unique("rbac"), unique("rbac-other")
    for name in (ns, other):
        control_plane.kubectl("create", "namespace", name)
        control_plane.kubectl("create", "secret", "generic", "s1", "-n", name, "--from-literal=k=v")
    control_plane.kubectl("create", "serviceaccount", "robot", "-n", ns)
    as_robot = control_plane.impersonate_service_account(ns, "robot")

    denied = control_plane.kubectl("get", "secret", "s1", "-n", ns, *as_robot, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert f'"system:serviceaccount:{ns}:robot" cannot get resource "secrets"' in denied.stderr

    _allow_get_secrets(control_plane, ns, "robot")

    def allowed() -> bool:
        return (
            control_plane.kubectl(
                "auth", "can-i", "get", "secrets", "-n", ns, *as_robot, check=False
            ).stdout.strip()
            == "yes"
        )

    eventually(allowed, what="the RoleBinding takes effect")
    got = control_plane.kubectl_json("get", "secret", "s1", "-n", ns, *as_robot)
    assert got["data"] == {"k": "dg=="}
    # Exactly what was granted: not list, not another namespace.
    listing = control_plane.kubectl("get", "secrets", "-n", ns, *as_robot, check=False)
    assert listing.returncode != 0
    assert 'cannot list resource "secrets"' in listing.stderr
    elsewhere = control_plane.kubectl("get", "secret", "s1", "-n", other, *as_robot, check=False)
    assert elsewhere.returncode != 0
    assert "forbidden" in elsewhere.stderr.lower()


def test_service_account_token_kubeconfig(control_plane: ControlPlane) -> None:
    ns = unique("token")
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("create", "secret", "generic", "s1", "-n", ns, "--from-literal=k=v")
    kubeconfig = control_plane.service_account_kubeconfig(ns, "bot")

    whoami = control_plane.kubectl_json("auth", "whoami", kubeconfig=kubeconfig)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:bot"
    assert f"system:serviceaccounts:{ns}" in whoami["status"]["userInfo"]["groups"]

    denied = control_plane.kubectl(
        "get", "secret", "s1", "-n", ns, kubeconfig=kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()

    _allow_get_secrets(control_plane, ns, "bot")
    eventually(
        lambda: (
            control_plane.kubectl(
                "get", "secret", "s1", "-n", ns, kubeconfig=kubeconfig, check=False
            ).returncode
            == 0
        ),
        what="the token's ServiceAccount may get the secret",
    )


def test_stop_kills_everything_and_removes_the_work_folder(
    control_plane_binaries: Path,
) -> None:
    plane = ControlPlane(control_plane_binaries)
    try:
        plane.start()
        pids = plane.pids()
        assert len(pids) == 2
        assert all(pid_alive(pid) for pid in pids)
        assert plane.kubeconfig.is_file()
        assert plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    finally:
        plane.stop()
    assert not any(pid_alive(pid) for pid in pids)
    assert not plane.workdir.exists()
    plane.stop()  # idempotent


def test_start_failure_reports_the_logs_and_cleans_up(control_plane_binaries: Path) -> None:
    plane = ControlPlane(control_plane_binaries, extra_apiserver_args=["--no-such-flag-for-e2e=1"])
    with pytest.raises(ControlPlaneStartError) as failure:
        plane.start(timeout=60)
    message = str(failure.value)
    assert "kube-apiserver exited" in message
    assert "no-such-flag-for-e2e" in message
    assert "kube-apiserver.log" in message
    assert not any(pid_alive(pid) for pid in plane.pids())
    assert not plane.workdir.exists()
