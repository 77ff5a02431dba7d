"""The admission policies of metacontroller/base/admission-policies.yaml against the real
kube-apiserver: who may write what the nodes act on.

- Profile ConfigMaps: a tenant bound to the built-in ``edit`` ClusterRole in one namespace
  (and even a cluster administrator) is refused every way of forging one; Metacontroller's
  ServiceAccount may write its profiles' own ConfigMaps and nothing else labelled; the
  garbage collector and the namespace controller may delete them and change their metadata.
- Node statuses: nodesync's ServiceAccount, impersonated with the node-name extra a pod's
  bound token carries (and with a real pod-bound token), may write only its own node's.
- The log enricher creates only recorded profiles and deletes only partial ones.
- With nodesync running, no forged byte reaches the node: the forgeries the API refuses, and
  those made while the policy's binding is removed (as if the policy were missing), which
  nodesync refuses itself, are never written, and the real profile's file and status stand.
  What nodesync cannot tell by itself: a ConfigMap made exactly as Metacontroller would make
  it for a profile that has none (``mimic-for-another-profile``); the policy alone stops it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.configmaps import (
    PROFILE_WARNING_ANNOTATION,
    SECCOMP_KEY,
    SECCOMP_KIND,
    SELINUX_KEY,
    configmap_metadata,
    configmap_name,
)
from hooks.api.nodestatuslabels import (
    NODE_NAME_LABEL,
    PROFILE_ID_LABEL,
    PROFILE_KIND_LABEL,
    PROFILE_STATE_LABEL,
    node_label,
    profile_id,
    status_name,
)
from hooks.api.profilerecording import PROFILE_PARTIAL_LABEL, PROFILE_TO_RECORDING_LABEL
from hooks.api.seccompprofile import OPERATOR_PROFILE_LABEL
from nodesync.nodeio import reasons
from tests.helpers.controlplane import METACONTROLLER, ControlPlane
from tests.helpers.nodesync_process import NodeSync, eventually, node_status
from tests.helpers.selinuxd_double import SelinuxdDouble

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "security-profiles-operator"
TENANT = "vap-tenant"
ELSEWHERE = "vap-elsewhere"
ALICE = ["--as=alice-vap"]  # bound to the built-in "edit" ClusterRole in TENANT only
GC = ControlPlane.impersonate_service_account("kube-system", "generic-garbage-collector")
NAMESPACE_CONTROLLER = ControlPlane.impersonate_service_account(
    "kube-system", "namespace-controller"
)
NODESYNC_USER = f"system:serviceaccount:{OPERATOR_NS}:spo-nodesync"
LOG_ENRICHER = ControlPlane.impersonate_service_account(OPERATOR_NS, "spo-log-enricher")
NODE_EXTRA = "authentication.kubernetes.io/node-name"
CONFIGMAP_POLICY = "ValidatingAdmissionPolicy 'spo-profile-configmaps'"
STATUS_POLICY = "ValidatingAdmissionPolicy 'spo-node-statuses'"
ENRICHER_POLICY = "ValidatingAdmissionPolicy 'spo-log-enricher-profiles'"
OPERATOR_PROFILE_POLICY = "ValidatingAdmissionPolicy 'spo-operator-profiles'"
SECCOMP = f"seccompprofiles.{GROUP}"
SELINUX = f"selinuxprofiles.{GROUP}"
STATUSES = f"securityprofilenodestatuses.{GROUP}"
LEGIT = (
    '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}'
)
MARK = "forged-by-the-test"
FORGED = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "comment": MARK})
FORGED_CIL = f"(block evil_{TENANT} (typepermissive container.process) ; {MARK}\n)\n"
VICTIM = "victim"


def nodesync_on(node: str | None) -> list[str]:
    """kubectl arguments acting as nodesync's ServiceAccount, on ``node`` (None: no node)."""
    return [f"--as={NODESYNC_USER}", *([f"--as-user-extra={NODE_EXTRA}={node}"] if node else [])]


# -- objects ---------------------------------------------------------------------------------------


SPECS = {
    "SeccompProfile": ("v1beta1", {"defaultAction": "SCMP_ACT_LOG"}),
    "SelinuxProfile": ("v1alpha2", {"inherit": [{"name": "container"}]}),
    "RawSelinuxProfile": ("v1alpha2", {"policy": "(blockinherit container)\n"}),
}


def profile(
    plane: ControlPlane, name: str, namespace: str = TENANT, kind: str = "SeccompProfile"
) -> str:
    """A profile as a user makes it (nothing reconciles it here); returns its uid."""
    version, spec = SPECS[kind]
    plane.apply(
        {
            "apiVersion": f"{GROUP}/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    return str(
        plane.kubectl_json("get", f"{kind.lower()}s.{GROUP}", name, "-n", namespace)["metadata"][
            "uid"
        ]
    )


def owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    version = "v1beta1" if kind == "SeccompProfile" else "v1alpha2"
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child(
    name: str, uid: str, data: str = LEGIT, namespace: str = TENANT, kind: str = SECCOMP_KIND
) -> dict[str, Any]:
    """The ConfigMap the hook returns for profile ``name``, owned by it as Metacontroller owns
    it."""
    metadata = configmap_metadata(kind, namespace, name)
    metadata["ownerReferences"] = [owner(kind, name, uid)]
    key = SECCOMP_KEY if kind == SECCOMP_KIND else SELINUX_KEY
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {key: data}}


def legit(plane: ControlPlane, name: str, namespace: str = TENANT) -> str:
    """A SeccompProfile and its ConfigMap, written by Metacontroller; returns the profile's uid."""
    uid = profile(plane, name, namespace)
    plane.apply(child(name, uid, namespace=namespace), who=METACONTROLLER)
    return uid


def configmap(plane: ControlPlane, name: str, namespace: str = TENANT) -> dict[str, Any] | None:
    got = plane.kubectl("get", "configmap", name, "-n", namespace, "-o", "json", check=False)
    found: dict[str, Any] | None = json.loads(got.stdout) if got.returncode == 0 else None
    return found


def node_status_object(profile_name: str, node: str, namespace: str = TENANT) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "SecurityProfileNodeStatus",
        "metadata": {
            "name": status_name(profile_name, node),
            "namespace": namespace,
            "labels": {
                PROFILE_ID_LABEL: profile_id(SECCOMP_KIND, profile_name),
                NODE_NAME_LABEL: node_label(node),
                PROFILE_KIND_LABEL: SECCOMP_KIND,
                PROFILE_STATE_LABEL: "Installed",
            },
        },
        "nodeName": node,
        "status": "Installed",
    }


def run(
    plane: ControlPlane, who: list[str], *args: str, body: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """kubectl as ``who``: (succeeded, stderr)."""
    done = plane.kubectl(
        *args, *who, input=json.dumps(body) if body is not None else None, check=False
    )
    return done.returncode == 0, done.stderr


def refused_by(policy: str, outcome: tuple[bool, str]) -> None:
    ok, stderr = outcome
    assert not ok, "allowed"
    assert policy in stderr, stderr  # refused by the policy, not by RBAC


# -- fixtures --------------------------------------------------------------------------------------


def enforced(plane: ControlPlane, timeout: float = 60.0) -> None:
    """Wait until the API server enforces the policies (it loads them a moment after they are
    stored): a dry run of a labelled ConfigMap by the administrator is refused."""
    probe = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "probe", "namespace": TENANT, "labels": {PROFILE_KIND_LABEL: "probe"}},
    }
    deadline = time.monotonic() + timeout
    while True:
        ok, stderr = run(plane, [], "create", "--dry-run=server", "-f", "-", body=probe)
        if not ok and CONFIGMAP_POLICY in stderr:
            return
        assert time.monotonic() < deadline, f"the policies are not enforced: {stderr or 'allowed'}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    for namespace in (TENANT, ELSEWHERE):
        installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    installed.aggregate_cluster_role(
        "edit"
    )  # the built-in role, as kube-controller-manager fills it
    installed.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-edits", "namespace": TENANT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice-vap"}
            ],
        }
    )
    enforced(installed)
    yield installed
    for namespace in (TENANT, ELSEWHERE):
        installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def victim(plane: ControlPlane) -> str:
    """The real profile whose ConfigMap every forgery goes after; returns its uid."""
    uid = legit(plane, VICTIM)
    plain = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": TENANT},
        "data": {"k": "v"},
    }
    assert run(plane, ALICE, "create", "-f", "-", body=plain)[0]  # an unlabelled one: hers to make
    return uid


def victim_intact(plane: ControlPlane, uid: str) -> None:
    got = configmap(plane, configmap_name(SECCOMP_KIND, VICTIM))
    assert got is not None, "the real ConfigMap is gone"
    assert got["data"] == {SECCOMP_KEY: LEGIT}
    assert got["metadata"]["labels"][PROFILE_KIND_LABEL] == SECCOMP_KIND
    assert got["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] == VICTIM
    assert [o["uid"] for o in got["metadata"]["ownerReferences"]] == [uid]


# -- profile ConfigMaps: every forging path is refused
# -----------------------------------------------


FORGERIES: dict[str, tuple[list[str], dict[str, Any] | None]] = {
    # a new ConfigMap carrying the label: allow-all under another profile's name
    "create-seccomp": (
        ["create", "-f", "-"],
        {
            **child("evil", "x", FORGED),
            "metadata": {
                **configmap_metadata(SECCOMP_KIND, TENANT, "evil"),
                "annotations": {"spo.x-k8s.io/profile-name": VICTIM},
            },
        },
    ),
    # ... owned by the real profile, as Metacontroller would make it
    "create-as-its-owner": (
        ["create", "-f", "-"],
        {
            **child(VICTIM, "x", FORGED),
            "metadata": {**child(VICTIM, "x")["metadata"], "name": "seccomp-victim-copy"},
        },
    ),
    # an SELinux module making every container domain permissive
    "create-selinux": (
        ["create", "-f", "-"],
        child("evil", "x", FORGED_CIL, kind="SelinuxProfile"),
    ),
    "create-raw-selinux": (
        ["create", "-f", "-"],
        child("evil", "x", FORGED_CIL, kind="RawSelinuxProfile"),
    ),
    "server-side-apply": (["apply", "--server-side", "-f", "-"], child("evil2", "x", FORGED)),
    # exactly as Metacontroller would make it, for a profile that has no ConfigMap (nodesync
    # cannot tell this one from the real thing: only the policy stops it)
    "mimic-for-another-profile": (["create", "-f", "-"], child("ghost", "x", FORGED)),
    # an unlabelled ConfigMap of hers gains the label
    "label-existing": (
        ["label", "configmap", "plain", "-n", TENANT, f"{PROFILE_KIND_LABEL}={SECCOMP_KIND}"],
        None,
    ),
    # the real ConfigMap loses the label (nodesync would remove the profile from every node)
    "unlabel": (
        ["label", "configmap", "seccomp-victim", "-n", TENANT, f"{PROFILE_KIND_LABEL}-"],
        None,
    ),
    "relabel-kind": (
        [
            "label",
            "--overwrite",
            "configmap",
            "seccomp-victim",
            "-n",
            TENANT,
            f"{PROFILE_KIND_LABEL}=SelinuxProfile",
        ],
        None,
    ),
    "change-data": (
        [
            "patch",
            "configmap",
            "seccomp-victim",
            "-n",
            TENANT,
            "--type=merge",
            "-p",
            json.dumps({"data": {SECCOMP_KEY: FORGED}}),
        ],
        None,
    ),
    "add-binary-data": (
        [
            "patch",
            "configmap",
            "seccomp-victim",
            "-n",
            TENANT,
            "--type=merge",
            "-p",
            '{"binaryData": {"x": "eA=="}}',
        ],
        None,
    ),
    "change-annotation": (
        [
            "annotate",
            "--overwrite",
            "configmap",
            "seccomp-victim",
            "-n",
            TENANT,
            "spo.x-k8s.io/profile-name=other",
        ],
        None,
    ),
    # a warning of her own, which every node would copy into its Events on the profile
    "add-warning": (
        [
            "annotate",
            "configmap",
            "seccomp-victim",
            "-n",
            TENANT,
            f"{PROFILE_WARNING_ANNOTATION}=restart your pods at evil.example",
        ],
        None,
    ),
    "drop-owner": (
        [
            "patch",
            "configmap",
            "seccomp-victim",
            "-n",
            TENANT,
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/metadata/ownerReferences"}]',
        ],
        None,
    ),
    "delete": (["delete", "configmap", "seccomp-victim", "-n", TENANT], None),
    "delete-by-label": (["delete", "configmaps", "-n", TENANT, "-l", PROFILE_KIND_LABEL], None),
    "delete-collection": (
        [
            "delete",
            "--raw",
            f"/api/v1/namespaces/{TENANT}/configmaps?labelSelector=spo.x-k8s.io%2Fprofile-kind",
        ],
        None,
    ),
}


def forge(plane: ControlPlane, who: list[str], path: str, victim_uid: str) -> tuple[bool, str]:
    """Try one forging path of ``FORGERIES`` (owner references naming the real profile's uid)."""
    args, body = FORGERIES[path]
    if body is not None:
        body = json.loads(json.dumps(body).replace('"uid": "x"', f'"uid": "{victim_uid}"'))
    return run(plane, who, *args, body=body)


@pytest.mark.parametrize("path", list(FORGERIES))
def test_a_namespace_editor_is_refused_every_forging_path(
    plane: ControlPlane, victim: str, path: str
) -> None:
    refused_by(CONFIGMAP_POLICY, forge(plane, ALICE, path, victim))
    victim_intact(plane, victim)
    for name in ("seccomp-evil", "seccomp-evil2", "seccomp-victim-copy", "seccomp-ghost"):
        assert configmap(plane, name) is None, name
    labels = (configmap(plane, "plain") or {})["metadata"].get("labels") or {}
    assert PROFILE_KIND_LABEL not in labels


@pytest.mark.parametrize(
    "path", ["create-seccomp", "create-selinux", "change-data", "unlabel", "delete"]
)
def test_a_cluster_administrator_is_refused_too(
    plane: ControlPlane, victim: str, path: str
) -> None:
    refused_by(CONFIGMAP_POLICY, forge(plane, [], path, victim))
    victim_intact(plane, victim)


def test_the_editor_still_manages_ordinary_configmaps(plane: ControlPlane, victim: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-settings", "namespace": TENANT, "labels": {"app": "x"}},
        "data": {"k": "v"},
    }
    assert run(plane, ALICE, "create", "-f", "-", body=body)[0]
    assert run(
        plane,
        ALICE,
        "patch",
        "configmap",
        "app-settings",
        "-n",
        TENANT,
        "--type=merge",
        "-p",
        '{"data": {"k": "w"}}',
    )[0]
    assert run(plane, ALICE, "delete", "configmap", "app-settings", "-n", TENANT)[0]


# -- profile ConfigMaps: Metacontroller and the collectors ----------------------------------------


def test_metacontroller_writes_its_profiles_configmaps(plane: ControlPlane) -> None:
    uid = profile(plane, "fresh")
    ok, err = run(
        plane,
        METACONTROLLER,
        "apply",
        "--server-side",
        "--field-manager=metacontroller",
        "-f",
        "-",
        body=child("fresh", uid),
    )
    assert ok, err
    changed = child("fresh", uid, '{"defaultAction":"SCMP_ACT_LOG"}')
    ok, err = run(
        plane,
        METACONTROLLER,
        "apply",
        "--server-side",
        "--field-manager=metacontroller",
        "-f",
        "-",
        body=changed,
    )
    assert ok, err
    assert (configmap(plane, "seccomp-fresh") or {})["data"] == {
        SECCOMP_KEY: '{"defaultAction":"SCMP_ACT_LOG"}'
    }
    # The hooks' warning annotation (hooks/api/configmaps.py): Metacontroller adds it and
    # takes it away again.
    warned = child("fresh", uid, '{"defaultAction":"SCMP_ACT_LOG"}')
    warned["metadata"] = configmap_metadata(SECCOMP_KIND, TENANT, "fresh", "a warning")
    warned["metadata"]["ownerReferences"] = [owner(SECCOMP_KIND, "fresh", uid)]
    for body, annotation in ((warned, "a warning"), (changed, None)):
        ok, err = run(
            plane,
            METACONTROLLER,
            "apply",
            "--server-side",
            "--field-manager=metacontroller",
            "-f",
            "-",
            body=body,
        )
        assert ok, err
        annotations = (configmap(plane, "seccomp-fresh") or {})["metadata"]["annotations"]
        assert annotations.get(PROFILE_WARNING_ANNOTATION) == annotation
    for kind in ("SelinuxProfile", "RawSelinuxProfile"):
        se_uid = profile(plane, f"fresh-{kind.lower()}", kind=kind)
        ok, err = run(
            plane,
            METACONTROLLER,
            "create",
            "-f",
            "-",
            body=child(f"fresh-{kind.lower()}", se_uid, "(block x)\n", kind=kind),
        )
        assert ok, err
    ok, err = run(plane, METACONTROLLER, "delete", "configmap", "seccomp-fresh", "-n", TENANT)
    assert ok, err


def _not_its_profiles(uid: str) -> dict[str, dict[str, Any]]:
    no_owner = child("orphan", uid)
    no_owner["metadata"]["ownerReferences"] = None
    other_name = child(VICTIM, uid)
    other_name["metadata"]["name"] = "seccomp-victim-copy"
    claims_other = child("claims", uid)
    claims_other["metadata"]["ownerReferences"][0]["name"] = "claims"
    claims_other["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = VICTIM
    wrong_kind = child(VICTIM, uid)
    wrong_kind["metadata"]["ownerReferences"][0]["kind"] = "ProfileRecording"
    wrong_group = child(VICTIM, uid)
    wrong_group["metadata"]["name"] = "seccomp-victim"
    wrong_group["metadata"]["namespace"] = ELSEWHERE
    wrong_group["metadata"]["ownerReferences"][0]["apiVersion"] = "example.com/v1"
    selinux_of_seccomp = child(VICTIM, uid, FORGED_CIL, kind="SelinuxProfile")
    selinux_of_seccomp["metadata"]["ownerReferences"][0]["kind"] = SECCOMP_KIND
    unknown_kind = child(VICTIM, uid)
    unknown_kind["metadata"]["labels"][PROFILE_KIND_LABEL] = "AppArmorProfile"
    unknown_kind["metadata"]["name"] = "apparmor-victim"
    return {
        "no-owner": no_owner,
        "other-name": other_name,
        "annotation-disagrees": claims_other,
        "owner-of-another-kind": wrong_kind,
        "owner-of-another-group": wrong_group,
        "selinux-label-seccomp-owner": selinux_of_seccomp,
        "unknown-kind": unknown_kind,
    }


@pytest.mark.parametrize("case", list(_not_its_profiles("x")))
def test_metacontroller_is_refused_a_configmap_that_is_not_its_profiles(
    plane: ControlPlane, victim: str, case: str
) -> None:
    """Another Metacontroller controller returning labelled ConfigMaps gets none in."""
    body = _not_its_profiles(victim)[case]
    refused_by(CONFIGMAP_POLICY, run(plane, METACONTROLLER, "create", "-f", "-", body=body))
    victim_intact(plane, victim)


def test_the_garbage_collector_deletes_and_orphans_but_never_rewrites(plane: ControlPlane) -> None:
    """kube-controller-manager's garbage collector, as its ServiceAccount (its own RBAC role,
    bootstrapped by the API server): deletes the ConfigMap of a deleted profile, removes an
    owner reference (orphaning), and is refused any change of data or labels."""
    legit(plane, "collected")
    legit(plane, "orphaned")
    refused_by(
        CONFIGMAP_POLICY,
        run(
            plane,
            GC,
            "patch",
            "configmap",
            "seccomp-orphaned",
            "-n",
            TENANT,
            "--type=merge",
            "-p",
            json.dumps({"data": {SECCOMP_KEY: FORGED}}),
        ),
    )
    refused_by(
        CONFIGMAP_POLICY,
        run(
            plane,
            GC,
            "label",
            "configmap",
            "seccomp-orphaned",
            "-n",
            TENANT,
            f"{PROFILE_KIND_LABEL}-",
        ),
    )
    ok, err = run(
        plane,
        GC,
        "patch",
        "configmap",
        "seccomp-orphaned",
        "-n",
        TENANT,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/metadata/ownerReferences"}]',
    )
    assert ok, err
    ok, err = run(plane, GC, "delete", "configmap", "seccomp-collected", "-n", TENANT)
    assert ok, err
    assert configmap(plane, "seccomp-collected") is None
    ok, err = run(
        plane, NAMESPACE_CONTROLLER, "delete", "configmap", "seccomp-orphaned", "-n", TENANT
    )
    assert ok, err


# -- the operator's own profiles: the label that drops the finalizer stays in its namespace --------


def operator_profile(name: str, namespace: str) -> dict[str, Any]:
    version, spec = SPECS["SeccompProfile"]
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": "SeccompProfile",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {OPERATOR_PROFILE_LABEL: "true"},
        },
        "spec": spec,
    }


@pytest.mark.parametrize("who", [ALICE, []], ids=["editor", "administrator"])
def test_no_profile_outside_the_operators_namespace_escapes_the_finalizer(
    plane: ControlPlane, who: list[str]
) -> None:
    """A profile labelled spo.x-k8s.io/operator-profile gets no finalizer, so a pod using it
    would not keep it from being deleted: neither made so nor labelled so later."""
    labelled = operator_profile("unfinalized", TENANT)
    refused_by(OPERATOR_PROFILE_POLICY, run(plane, who, "create", "-f", "-", body=labelled))
    profile(plane, "plain-profile")
    refused_by(
        OPERATOR_PROFILE_POLICY,
        run(
            plane,
            who,
            "label",
            SECCOMP,
            "plain-profile",
            "-n",
            TENANT,
            f"{OPERATOR_PROFILE_LABEL}=true",
        ),
    )
    found = plane.kubectl_json("get", SECCOMP, "plain-profile", "-n", TENANT)
    assert OPERATOR_PROFILE_LABEL not in (found["metadata"].get("labels") or {})
    # The operator's namespace may carry it (its log-enricher-trace does).
    ok, err = run(
        plane,
        [],
        "create",
        "--dry-run=server",
        "-f",
        "-",
        body=operator_profile("own", OPERATOR_NS),
    )
    assert ok, err


# -- node statuses: each node's agent writes its own node's only -----------------------------------


def test_a_nodes_agent_writes_its_own_status(plane: ControlPlane) -> None:
    mine = node_status_object("own", "node-a")
    ok, err = run(plane, nodesync_on("node-a"), "create", "-f", "-", body=mine)
    assert ok, err
    name = mine["metadata"]["name"]
    ok, err = run(
        plane,
        nodesync_on("node-a"),
        "patch",
        STATUSES,
        name,
        "-n",
        TENANT,
        "--type=merge",
        "-p",
        '{"status": "Error"}',
    )
    assert ok, err
    ok, err = run(
        plane,
        nodesync_on("node-a"),
        "patch",
        STATUSES,
        name,
        "-n",
        TENANT,
        "--type=merge",
        "-p",
        '{"message": "x"}',
    )
    assert ok, err
    ok, err = run(plane, nodesync_on("node-a"), "delete", STATUSES, name, "-n", TENANT)
    assert ok, err


def test_a_nodes_agent_cannot_touch_another_nodes_status(plane: ControlPlane) -> None:
    theirs = node_status_object("shared", "node-b")
    refused_by(STATUS_POLICY, run(plane, nodesync_on("node-a"), "create", "-f", "-", body=theirs))
    plane.apply(
        theirs
    )  # made by node-b's agent (here the administrator, whom the policy leaves alone)
    name = theirs["metadata"]["name"]
    for args in (
        [
            "patch",
            STATUSES,
            name,
            "-n",
            TENANT,
            "--type=merge",
            "-p",
            '{"status": "Installed"}',
        ],
        [
            "patch",
            STATUSES,
            name,
            "-n",
            TENANT,
            "--type=merge",
            "-p",
            '{"message": "all fine here"}',
        ],
        ["patch", STATUSES, name, "-n", TENANT, "--type=merge", "-p", '{"nodeName": "node-a"}'],
        ["label", "--overwrite", STATUSES, name, "-n", TENANT, f"{NODE_NAME_LABEL}=node-a"],
        ["delete", STATUSES, name, "-n", TENANT],
    ):
        refused_by(STATUS_POLICY, run(plane, nodesync_on("node-a"), *args))
    assert plane.kubectl_json("get", STATUSES, name, "-n", TENANT)["nodeName"] == "node-b"
    ok, err = run(
        plane,
        nodesync_on("node-b"),
        "patch",
        STATUSES,
        name,
        "-n",
        TENANT,
        "--type=merge",
        "-p",
        '{"message": "mine"}',
    )
    assert ok, err


def _handed_over(status: dict[str, Any], how: str) -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(status))
    if how == "node-name":
        changed["nodeName"] = "node-b"
    elif how == "node-label":
        changed["metadata"]["labels"][NODE_NAME_LABEL] = "node-b"
    else:
        del changed["metadata"]["labels"][NODE_NAME_LABEL]
    return changed


@pytest.mark.parametrize("how", ["node-name", "node-label", "no-node-label"])
def test_a_nodes_agent_cannot_hand_its_status_to_another_node(
    plane: ControlPlane, how: str
) -> None:
    mine = node_status_object(f"handed-{how}", "node-a")
    ok, err = run(plane, nodesync_on("node-a"), "create", "-f", "-", body=mine)
    assert ok, err
    stored = plane.kubectl_json("get", STATUSES, mine["metadata"]["name"], "-n", TENANT)
    refused_by(
        STATUS_POLICY,
        run(plane, nodesync_on("node-a"), "replace", "-f", "-", body=_handed_over(stored, how)),
    )
    other = _handed_over(node_status_object(f"handed-{how}-new", "node-a"), how)
    refused_by(STATUS_POLICY, run(plane, nodesync_on("node-a"), "create", "-f", "-", body=other))


def test_an_agent_without_a_node_writes_nothing(plane: ControlPlane) -> None:
    """A token not bound to a pod (no node-name extra) may write no status at all."""
    refused_by(
        STATUS_POLICY,
        run(
            plane,
            nodesync_on(None),
            "create",
            "-f",
            "-",
            body=node_status_object("nodeless", "node-a"),
        ),
    )


def test_a_long_node_name_is_matched_through_its_hashed_label(plane: ControlPlane) -> None:
    node = "node-" + "x" * 70 + ".example.com"
    mine = node_status_object("long", node)
    assert len(mine["metadata"]["labels"][NODE_NAME_LABEL]) == 63
    ok, err = run(plane, nodesync_on(node), "create", "-f", "-", body=mine)
    assert ok, err
    refused_by(
        STATUS_POLICY,
        run(
            plane, nodesync_on("node-a"), "delete", STATUSES, mine["metadata"]["name"], "-n", TENANT
        ),
    )


def test_a_pod_bound_token_carries_its_node_and_only_that_node_is_writable(
    plane: ControlPlane,
) -> None:
    """Not impersonation: the API server itself names the pod's node in a bound token's user."""
    kubeconfig = plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", "node-token")
    who = plane.kubectl_json("auth", "whoami", kubeconfig=kubeconfig)
    assert who["status"]["userInfo"]["username"] == NODESYNC_USER
    assert who["status"]["userInfo"]["extra"][NODE_EXTRA] == ["node-token"]
    ours = plane.kubectl(
        "create",
        "-f",
        "-",
        kubeconfig=kubeconfig,
        input=json.dumps(node_status_object("tok", "node-token")),
        check=False,
    )
    assert ours.returncode == 0, ours.stderr
    theirs = plane.kubectl(
        "create",
        "-f",
        "-",
        kubeconfig=kubeconfig,
        input=json.dumps(node_status_object("tok", "node-other")),
        check=False,
    )
    refused_by(STATUS_POLICY, (theirs.returncode == 0, theirs.stderr))


# -- the log enricher ------------------------------------------------------------------------------


def _recorded(name: str, kind: str = "SeccompProfile", **labels: str) -> dict[str, Any]:
    version, spec = (
        ("v1beta1", {"defaultAction": "SCMP_ACT_ERRNO"})
        if kind == "SeccompProfile"
        else ("v1alpha2", {"inherit": [{"name": "container"}]})
    )
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": TENANT, "labels": labels},
        "spec": spec,
    }


@pytest.mark.parametrize("kind", ["SeccompProfile", "SelinuxProfile"])
def test_the_log_enricher_creates_only_recorded_profiles(plane: ControlPlane, kind: str) -> None:
    refused_by(
        ENRICHER_POLICY,
        run(
            plane,
            LOG_ENRICHER,
            "create",
            "-f",
            "-",
            body=_recorded(f"unrecorded-{kind.lower()}", kind),
        ),
    )
    refused_by(
        ENRICHER_POLICY,
        run(
            plane,
            LOG_ENRICHER,
            "create",
            "-f",
            "-",
            body=_recorded(f"empty-{kind.lower()}", kind, **{PROFILE_TO_RECORDING_LABEL: ""}),
        ),
    )
    ok, err = run(
        plane,
        LOG_ENRICHER,
        "create",
        "-f",
        "-",
        body=_recorded(f"recorded-{kind.lower()}", kind, **{PROFILE_TO_RECORDING_LABEL: "rec"}),
    )
    assert ok, err


def test_the_log_enricher_deletes_only_partial_profiles(plane: ControlPlane) -> None:
    plane.apply(_recorded("users-own"))
    plane.apply(_recorded("recorded-whole", **{PROFILE_TO_RECORDING_LABEL: "rec"}))
    refused_by(
        ENRICHER_POLICY, run(plane, LOG_ENRICHER, "delete", SECCOMP, "users-own", "-n", TENANT)
    )
    refused_by(
        ENRICHER_POLICY, run(plane, LOG_ENRICHER, "delete", SECCOMP, "recorded-whole", "-n", TENANT)
    )
    partial = _recorded(
        "recorded-partial", **{PROFILE_TO_RECORDING_LABEL: "rec", PROFILE_PARTIAL_LABEL: "true"}
    )
    ok, err = run(plane, LOG_ENRICHER, "create", "-f", "-", body=partial)
    assert ok, err
    ok, err = run(plane, LOG_ENRICHER, "delete", SECCOMP, "recorded-partial", "-n", TENANT)
    assert ok, err
    assert plane.kubectl("get", SECCOMP, "users-own", "-n", TENANT, check=False).returncode == 0


# -- with nodesync running, no forged byte reaches the node ---------------------------------------


class Installs:
    """The selinuxd stand-in's installer (no semodule): records what it was handed."""

    def __init__(self) -> None:
        self.handed: list[bytes] = []

    def install(self, path: Path) -> tuple[bool, str]:
        self.handed.append(path.read_bytes())
        return True, ""

    def remove(self, policy: str) -> tuple[bool, str]:
        return True, ""


class Watch:
    """Reads every file under the node's folders, again and again, until stopped: any byte of
    a forgery seen, even for a moment, is kept."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.seen: list[str] = []
        self.rounds = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            self.rounds += 1
            for folder in self.folders:
                for directory, _, names in os.walk(folder):
                    for name in names:
                        try:
                            data = (Path(directory) / name).read_bytes()
                        except OSError:
                            continue
                        if MARK.encode() in data:
                            self.seen.append(f"{directory}/{name}")

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def node(
    plane: ControlPlane, victim: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeSync, Path, Installs]]:
    work = tmp_path_factory.mktemp("vap-node")
    installs = Installs()
    double = SelinuxdDouble(
        work / "selinuxd.sock", work / "selinux.d", install=installs.install, remove=installs.remove
    ).start()
    kubeconfig = plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", "vap-node")
    extra = [
        "--selinux-dir",
        str(double.drop_dir),
        "--selinuxd-socket",
        str(double.socket_path),
        "--selinux-poll-interval",
        "0.2",
    ]
    agent = NodeSync(kubeconfig, work / "kubelet", work / "nodesync.log", extra, node="vap-node")
    agent.start()
    try:

        def ready() -> None:
            try:
                code, body = agent.get("/readyz")
            except OSError as error:
                raise AssertionError(str(error)) from None
            assert code == 200, f"/readyz: {code} {body}"

        eventually("nodesync ready", ready, agent)
        yield agent, double.drop_dir, installs
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop(timeout=30)
        double.stop()


def _forged_while_unbound(victim_uid: str, selinux_uid: str) -> list[dict[str, Any]]:
    """What an administrator could store with the policy's binding gone: every way a ConfigMap
    can claim a profile it is not."""
    claims = child("evil", victim_uid, FORGED)
    claims["metadata"]["ownerReferences"] = None
    claims["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = VICTIM
    copy = child(VICTIM, victim_uid, FORGED)
    copy["metadata"]["name"] = "seccomp-victim-copy"
    recorded = child(VICTIM, victim_uid, FORGED)
    recorded["metadata"]["name"] = "seccomp-victim-rec"
    recorded["metadata"]["ownerReferences"][0]["kind"] = "ProfileRecording"
    other_ns = child("evil", victim_uid, FORGED, namespace=ELSEWHERE)
    other_ns["metadata"]["ownerReferences"][0]["name"] = VICTIM
    permissive = child("evil", selinux_uid, FORGED_CIL, kind="SelinuxProfile")
    permissive["metadata"]["ownerReferences"] = None
    se_copy = child("se-victim", selinux_uid, FORGED_CIL, kind="SelinuxProfile")
    se_copy["metadata"]["name"] = "selinux-se-victim-copy"
    raw_owned_by_typed = child("se-victim", selinux_uid, FORGED_CIL, kind="RawSelinuxProfile")
    raw_owned_by_typed["metadata"]["ownerReferences"][0]["kind"] = "SelinuxProfile"
    return [claims, copy, recorded, other_ns, permissive, se_copy, raw_owned_by_typed]


def test_with_nodesync_running_no_forged_byte_reaches_the_node(
    plane: ControlPlane, victim: str, node: tuple[NodeSync, Path, Installs]
) -> None:
    agent, drop, installs = node
    kubelet = agent.kubelet
    victim_file = agent.file(TENANT, VICTIM)

    def victim_installed() -> None:
        assert victim_file.exists() and victim_file.read_text() == LEGIT, (
            "the real profile is not installed"
        )
        status = node_status(plane, TENANT, VICTIM, node="vap-node")
        assert status is not None and status.get("status") == "Installed", status
        assert "message" not in status

    eventually("the real profile installed", victim_installed, agent)
    selinux_uid = profile(plane, "se-victim", kind="SelinuxProfile")
    forged = _forged_while_unbound(victim, selinux_uid)
    with Watch(kubelet, drop) as watch:
        # Through the policy: every forging path refused (the API never stores them).
        for path in FORGERIES:
            refused_by(CONFIGMAP_POLICY, forge(plane, ALICE, path, victim))
        # Without it (its binding deleted, as if the policy were missing): nodesync refuses them.
        binding = plane.kubectl_json(
            "get", "validatingadmissionpolicybinding", "spo-profile-configmaps"
        )
        plane.kubectl("delete", "validatingadmissionpolicybinding", "spo-profile-configmaps")
        try:

            def unbound() -> None:  # the API server's policy cache follows the delete
                probe = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "probe",
                        "namespace": ELSEWHERE,
                        "labels": {PROFILE_KIND_LABEL: "probe"},
                    },
                }
                ok, stderr = run(plane, [], "create", "--dry-run=server", "-f", "-", body=probe)
                assert ok, stderr

            eventually("the binding gone", unbound, agent)
            for body in forged:
                plane.apply(body)
            names = {f"{b['metadata']['namespace']}/{b['metadata']['name']}" for b in forged}

            def all_refused() -> None:
                refusals = {
                    f"{r.get('namespace')}/{r.get('configmap')}"
                    for r in agent.records()
                    if r.get("reason") == reasons.NOT_OWNED
                    and "nothing written" in str(r.get("msg"))
                }
                assert names <= refusals, f"not refused yet: {sorted(names - refusals)}"

            eventually("every forgery refused by nodesync", all_refused, agent)
            victim_installed()
        finally:
            for body in forged:
                plane.kubectl(
                    "delete",
                    "configmap",
                    body["metadata"]["name"],
                    "-n",
                    body["metadata"]["namespace"],
                    "--ignore-not-found",
                    check=False,
                )
            for key in (
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "managedFields",
            ):
                binding["metadata"].pop(key, None)
            plane.apply(binding)
        probe = FORGERIES["create-seccomp"][1]
        eventually(
            "the binding back",
            lambda: refused_by(
                CONFIGMAP_POLICY,
                run(plane, ALICE, "create", "--dry-run=server", "-f", "-", body=probe),
            ),
            agent,
        )
    assert watch.rounds > 10
    assert watch.seen == [], f"forged bytes appeared: {watch.seen}"
    assert not any(MARK.encode() in handed for handed in installs.handed)
    victim_installed()
    assert not (kubelet / "seccomp" / "operator" / ELSEWHERE).exists()
    for name in ("evil", "victim-copy", "victim-rec", "se-victim"):
        assert node_status(plane, TENANT, name, node="vap-node") is None, name
    saved = [
        r
        for r in agent.records()
        if r.get("msg") == "profile saved" and r.get("namespace") in (TENANT, ELSEWHERE)
    ]
    assert {(r.get("namespace"), r.get("name")) for r in saved} == {(TENANT, VICTIM)}, saved


# -- the identity is a kustomize setting
# -------------------------------------------------------------


def test_metacontrollers_identity_is_set_by_the_documented_overlay(
    plane: ControlPlane, tmp_path: Path
) -> None:
    text = (REPO / "metacontroller" / "base" / "admission-policies.yaml").read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "#      patches:")
    block = [line[len("#      ") :] for line in lines[start : start + 3]]
    patch = "\n".join(block).replace("my-ns", "mc-system").replace("my-metacontroller", "mc")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(REPO / "metacontroller" / "base", overlay)
    (overlay / "kustomization.yaml").write_text(f"resources:\n  - {base}\n{patch}\n")
    docs = [d for d in yaml.safe_load_all(plane.kubectl("kustomize", str(overlay)).stdout) if d]
    [policy] = [
        d
        for d in docs
        if d["kind"] == "ValidatingAdmissionPolicy"
        and d["metadata"]["name"] == "spo-profile-configmaps"
    ]
    assert policy["spec"]["variables"][0] == {
        "name": "metacontroller",
        "expression": "'system:serviceaccount:mc-system:mc'",
    }
    # and the API server accepts the policy so changed (a dry run: the installed one stays)
    policy["metadata"]["name"] = "spo-profile-configmaps-overlay"
    done = plane.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(policy), check=False
    )
    assert done.returncode == 0, done.stderr
