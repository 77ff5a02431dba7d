"""The log enricher's least-privilege RBAC (metacontroller/base/log-enricher.yaml) and the
DaemonSet that runs it under that identity, as the spod controller computes it from the
default spod (metacontroller/base/spod.yaml) with enableLogEnricher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.cluster.spod import daemonset
from hooks.command import cli

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "metacontroller/base/log-enricher.yaml"
NODESYNC_MANIFEST = ROOT / "metacontroller/base/nodesync.yaml"
SPOD = ROOT / "metacontroller/base/spod.yaml"
GROUP = "security-profiles-operator.x-k8s.io"


def objects(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}


def granted(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    return {
        (group, resource): set(rule["verbs"])
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_rbac_grants_only_what_the_log_enricher_uses() -> None:
    rules = objects()["ClusterRole"]["rules"]
    assert granted(rules) == {
        ("", "pods"): {"get", "list", "watch"},
        (GROUP, "seccompprofiles"): {"get", "list", "create", "delete"},
        (GROUP, "selinuxprofiles"): {"get", "list", "create", "delete"},
        (GROUP, "profilerecordings"): {"get", "list", "watch"},
        ("", "events"): {"create"},
    }
    assert "*" not in str(rules) and "secrets" not in str(rules)
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in rules)
    binding = objects()["ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "spo-log-enricher",
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "spo-log-enricher",
            "namespace": "security-profiles-operator",
        }
    ]
    account = objects()["ServiceAccount"]
    assert account["metadata"]["name"] == daemonset.ENRICHER_SERVICE_ACCOUNT
    assert account["metadata"]["namespace"] == "security-profiles-operator"


def test_nodesync_keeps_none_of_the_log_enrichers_rights() -> None:
    nodesync = granted(objects(NODESYNC_MANIFEST)["ClusterRole"]["rules"])
    assert not {key for key in nodesync if key[1] in ("pods", "seccompprofiles", "selinuxprofiles")}
    assert (GROUP, "profilerecordings") not in nodesync


def test_the_daemonset_runs_the_log_enricher_under_its_own_account() -> None:
    raw = yaml.safe_load(SPOD.read_text())
    raw["spec"]["enableLogEnricher"] = True
    nodesync, log_enricher = daemonset.daemonsets(
        SecurityProfilesOperatorDaemon.model_validate(raw)
    )
    assert (
        log_enricher["metadata"]["namespace"]
        == objects()["ServiceAccount"]["metadata"]["namespace"]
    )
    assert log_enricher["spec"]["template"]["spec"]["serviceAccountName"] == "spo-log-enricher"
    assert nodesync["spec"]["template"]["spec"]["serviceAccountName"] == "spo-nodesync"


ENRICHER_ENV = (
    "NODE_NAME",
    "WATCH_NAMESPACE",
    "ENABLE_MEMORY_OPTIMIZATION",
    "METRICS_BIND",
    "LOG_LEVEL",
    "STATE_DIR",
    "AUDIT_LOG_PATH",
)


def test_the_container_says_what_spo_log_enricher_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DaemonSet's args and env, parsed by the command it runs: every choice arrives."""
    raw = yaml.safe_load(SPOD.read_text())
    raw["spec"].update(
        enableLogEnricher=True,
        enableMemoryOptimization=True,
        verbosity=1,
        hostProcVolumePath="/hostproc",
    )
    raw["metadata"]["annotations"] = {daemonset.WATCH_NAMESPACE_ANNOTATION: "team-a"}
    ds = daemonset.log_enricher_daemonset(SecurityProfilesOperatorDaemon.model_validate(raw))
    [container] = ds["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["spo", "log-enricher"]
    for name in ENRICHER_ENV:
        monkeypatch.delenv(name, raising=False)
    for env in container["env"]:
        monkeypatch.setenv(env["name"], env.get("value", "node-1"))
    args = cli.parser().parse_args([*container["command"][1:], *container["args"]])
    assert args.node_name == "node-1"
    assert args.namespace == "team-a"
    assert args.memory_optimization is True
    assert args.log_level == "debug"
    assert args.state_dir == daemonset.ENRICHER_STATE_DIR
    assert args.proc_dir == daemonset.HOST_PROC_MOUNT
    assert args.audit_log.startswith(daemonset.AUDIT_LOG_DIR + "/")
    assert args.metrics_bind.endswith(f":{container['ports'][0]['containerPort']}")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {args.state_dir, args.proc_dir, daemonset.AUDIT_LOG_DIR} <= mounts
