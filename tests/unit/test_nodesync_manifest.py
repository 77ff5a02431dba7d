"""nodesync's least-privilege RBAC (metacontroller/nodesync.yaml) and its locked-down DaemonSet,
as the spod controller computes it from the default spod (metacontroller/spod.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.cluster.spod.daemonset import daemonset as build_daemonset

MANIFEST = Path(__file__).parents[2] / "metacontroller/base/nodesync.yaml"
SPOD = Path(__file__).parents[2] / "metacontroller/base/spod.yaml"


def objects() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def test_rbac_grants_only_what_nodesync_uses() -> None:
    rules = objects()["ClusterRole"]["rules"]
    granted = {
        (g, r): set(rule["verbs"])
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    group = "security-profiles-operator.x-k8s.io"
    assert granted == {
        ("", "configmaps"): {"list", "watch"},
        (group, "securityprofilenodestatuses"): {
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
        },
        ("", "events"): {"create"},
    }
    assert "*" not in str(rules) and "secrets" not in str(rules)
    binding = objects()["ClusterRoleBinding"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "spo-nodesync",
            "namespace": "security-profiles-operator",
        }
    ]


def test_daemonset_runs_nodesync_unprivileged_on_the_kubelet_seccomp_dir() -> None:
    default_spod = SecurityProfilesOperatorDaemon.model_validate(yaml.safe_load(SPOD.read_text()))
    daemonset = build_daemonset(default_spod)
    assert daemonset["metadata"]["namespace"] == "security-profiles-operator"
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "spo-nodesync"
    [container] = [c for c in pod["containers"] if c["name"] == "nodesync"]
    assert container["image"] == "security-profiles-operator-py:latest"
    assert container["command"] == ["spo", "nodesync"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kubelet-seccomp"]["hostPath"]["path"] == "/var/lib/kubelet/seccomp"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["kubelet-seccomp"] == "/var/lib/kubelet/seccomp"
    assert {
        p["path"]
        for p in (container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"])
    } == {
        "/healthz",
        "/readyz",
    }
    [init] = pod["initContainers"]  # the one root step: hand operator/ to the nodesync user
    assert str(security["runAsUser"]) in " ".join(init["command"])
    assert "ALL" in init["securityContext"]["capabilities"]["drop"]
