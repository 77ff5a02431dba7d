"""The nodesync DaemonSet computed from a SecurityProfilesOperatorDaemon."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.spod import daemonset

ROOT = Path(__file__).parents[2]
DEFAULT_SPOD = yaml.safe_load((ROOT / "metacontroller/base/spod.yaml").read_text())


def spod(
    spec: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
) -> SecurityProfilesOperatorDaemon:
    raw = copy.deepcopy(DEFAULT_SPOD)
    if spec is not None:
        raw["spec"] = {**raw["spec"], **spec}
    if annotations:
        raw["metadata"]["annotations"] = annotations
    return SecurityProfilesOperatorDaemon.model_validate(raw)


def pod_of(ds: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = ds["spec"]["template"]["spec"]
    return pod


def container(ds: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_of(ds)["containers"] if c["name"] == name)


def env_of(ds: dict[str, Any], name: str = "nodesync") -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(ds, name).get("env", [])}


def changed_parts(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Which pod fields, containers (by name) and volumes changed between two DaemonSets."""
    assert {k: v for k, v in before.items() if k != "spec"} == {
        k: v for k, v in after.items() if k != "spec"
    }
    assert before["spec"]["selector"] == after["spec"]["selector"]
    changed = set()
    old, new = pod_of(before), pod_of(after)
    for key in sorted(set(old) | set(new)):
        if key in ("containers", "initContainers", "volumes"):
            olds = {c["name"]: c for c in old.get(key, [])}
            news = {c["name"]: c for c in new.get(key, [])}
            for name in sorted(set(olds) | set(news)):
                if olds.get(name) != news.get(name):
                    diff = (
                        sorted(
                            f
                            for f in set(olds[name]) | set(news[name])
                            if olds[name].get(f) != news[name].get(f)
                        )
                        if name in olds and name in news
                        else ["added" if name in news else "removed"]
                    )
                    changed |= {f"{key}/{name}/{field}" for field in diff}
        elif old.get(key) != new.get(key):
            changed.add(key)
    return changed


def test_default_spod_has_go_default_tolerations_and_priority_class() -> None:
    pod = pod_of(daemonset.daemonset(spod()))
    assert pod["priorityClassName"] == "system-node-critical"
    assert {(t["key"], t["effect"]) for t in pod["tolerations"]} == {
        ("node-role.kubernetes.io/master", "NoSchedule"),
        ("node-role.kubernetes.io/control-plane", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"),
    }
    assert all(t["operator"] == "Exists" for t in pod["tolerations"])


def test_an_empty_spec_computes_the_same_daemonset_as_the_default_spod() -> None:
    raw = copy.deepcopy(DEFAULT_SPOD)
    raw["spec"] = {}
    empty = SecurityProfilesOperatorDaemon.model_validate(raw)
    assert daemonset.daemonset(empty) == daemonset.daemonset(spod())


def test_daemonset_is_deterministic_and_shares_nothing_between_calls() -> None:
    first = daemonset.daemonset(spod({"enableSelinux": True, "enableLogEnricher": True}))
    second = daemonset.daemonset(spod({"enableSelinux": True, "enableLogEnricher": True}))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    pod_of(first)["tolerations"].append({"operator": "Exists"})
    container(first, "nodesync")["resources"]["limits"]["cpu"] = "9"
    pod_of(first)["containers"][0]["securityContext"]["capabilities"]["drop"].clear()
    third = daemonset.daemonset(spod({"enableSelinux": True, "enableLogEnricher": True}))
    assert third == second
    assert daemonset.default_tolerations() == pod_of(third)["tolerations"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"enableMemoryOptimization": True}, {"containers/nodesync/env"}),
        ({"verbosity": 1}, {"containers/nodesync/env"}),
        ({"verbosity": 0}, set()),
        ({"priorityClassName": "spo-critical"}, {"priorityClassName"}),
        ({"tolerations": [{"operator": "Exists"}]}, {"tolerations"}),
        (
            {"daemonResourceRequirements": {"requests": {"memory": "1Gi"}}},
            {"containers/nodesync/resources"},
        ),
        ({"hostProcVolumePath": "/hostproc"}, set()),
        ({"imagePullSecrets": [{"name": "pull"}]}, {"imagePullSecrets"}),
        (
            {"selinuxTypeTag": "unconfined_t"},
            {
                "containers/nodesync/securityContext",
                "initContainers/prepare-operator-dir/securityContext",
            },
        ),
        (
            {"enableLogEnricher": True},
            {"containers/log-enricher/added", "volumes/host-audit-log/added", "hostPID"},
        ),
        (
            {"enableSelinux": True},
            {
                "containers/selinuxd/added",
                "initContainers/selinux-templates/added",
                "containers/nodesync/env",
                "containers/nodesync/volumeMounts",
                "containers/nodesync/securityContext",
                "initContainers/prepare-operator-dir/securityContext",
                "volumes/selinux-drop-dir/added",
                "volumes/selinuxd-run/added",
                "volumes/host-etc-selinux/added",
                "volumes/host-var-lib-selinux/added",
                "volumes/host-sys-fs-selinux/added",
            },
        ),
    ],
)
def test_changing_one_field_changes_only_its_part_of_the_daemonset(
    spec: dict[str, Any], expected: set[str]
) -> None:
    assert changed_parts(daemonset.daemonset(spod()), daemonset.daemonset(spod(spec))) == expected


def test_memory_optimisation_is_an_env_var_of_nodesync() -> None:
    assert (
        env_of(daemonset.daemonset(spod({"enableMemoryOptimization": True})))[
            "ENABLE_MEMORY_OPTIMIZATION"
        ]
        == "true"
    )
    assert "ENABLE_MEMORY_OPTIMIZATION" not in env_of(
        daemonset.daemonset(spod({"enableMemoryOptimization": False}))
    )


def test_verbosity_turns_on_debug_logs_of_our_containers() -> None:
    ds = daemonset.daemonset(spod({"verbosity": 1, "enableLogEnricher": True}))
    assert env_of(ds)["LOG_LEVEL"] == "debug"
    assert env_of(ds, "log-enricher")["LOG_LEVEL"] == "debug"
    assert "LOG_LEVEL" not in env_of(daemonset.daemonset(spod({"verbosity": 0})))


def test_selinux_shares_the_policy_dir_and_socket_between_nodesync_and_selinuxd() -> None:
    ds = daemonset.daemonset(spod({"enableSelinux": True}))
    env = env_of(ds)
    assert env["SELINUXD_SOCKET"] == "/var/run/selinuxd/selinuxd.sock"
    assert env["SELINUX_POLICY_DIR"] == "/etc/selinux.d"
    selinuxd = container(ds, "selinuxd")
    assert selinuxd["image"] == daemonset.DEFAULT_SELINUXD_IMAGE
    assert "--socket-path" in selinuxd["args"]
    socket_path = selinuxd["args"][selinuxd["args"].index("--socket-path") + 1]
    assert socket_path == env["SELINUXD_SOCKET"]
    gid = selinuxd["args"][selinuxd["args"].index("--socket-gid") + 1]
    assert gid == str(container(ds, "nodesync")["securityContext"]["runAsGroup"])
    mounts = {
        (m["name"], m["mountPath"], m.get("readOnly", False)) for m in selinuxd["volumeMounts"]
    }
    nodesync_mounts = {
        (m["name"], m["mountPath"]) for m in container(ds, "nodesync")["volumeMounts"]
    }
    assert ("selinux-drop-dir", env["SELINUX_POLICY_DIR"], True) in mounts
    assert ("selinux-drop-dir", env["SELINUX_POLICY_DIR"]) in nodesync_mounts
    assert ("selinuxd-run", "/var/run/selinuxd") in nodesync_mounts
    host_paths = {v["hostPath"]["path"] for v in pod_of(ds)["volumes"] if "hostPath" in v}
    assert {"/etc/selinux", "/var/lib/selinux"} <= host_paths


def test_selinux_off_has_no_selinuxd_and_no_host_selinux_dirs() -> None:
    ds = daemonset.daemonset(spod({"enableSelinux": False}))
    assert [c["name"] for c in pod_of(ds)["containers"]] == ["nodesync"]
    assert "SELINUXD_SOCKET" not in env_of(ds)
    assert not any("selinux" in v["name"] for v in pod_of(ds)["volumes"])


def test_log_enricher_reads_the_audit_log_read_only_with_host_pid() -> None:
    ds = daemonset.daemonset(spod({"enableLogEnricher": True}))
    enricher = container(ds, "log-enricher")
    assert enricher["command"] == ["spo", "log-enricher"]
    assert "args" not in enricher
    assert pod_of(ds)["hostPID"] is True
    [mount] = enricher["volumeMounts"]
    assert mount == {"name": "host-audit-log", "mountPath": "/var/log/audit", "readOnly": True}
    assert enricher["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert enricher["securityContext"]["allowPrivilegeEscalation"] is False
    off = daemonset.daemonset(spod({"enableLogEnricher": False}))
    assert "hostPID" not in pod_of(off)
    assert [c["name"] for c in pod_of(off)["containers"]] == ["nodesync"]


def test_custom_host_proc_is_mounted_for_the_log_enricher_only() -> None:
    ds = daemonset.daemonset(spod({"enableLogEnricher": True, "hostProcVolumePath": "/hostproc"}))
    enricher = container(ds, "log-enricher")
    assert enricher["args"] == ["--proc-dir=/host/proc"]
    assert {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True} in enricher[
        "volumeMounts"
    ]
    [volume] = [v for v in pod_of(ds)["volumes"] if v["name"] == "host-proc"]
    assert volume["hostPath"] == {"path": "/hostproc", "type": "Directory"}
    assert not any(m["name"] == "host-proc" for m in container(ds, "nodesync")["volumeMounts"])


def test_images_come_from_annotations_or_defaults() -> None:
    ds = daemonset.daemonset(
        spod(
            {"enableSelinux": True, "enableLogEnricher": True},
            annotations={
                daemonset.IMAGE_ANNOTATION: "r.example/spo:1",
                daemonset.SELINUXD_IMAGE_ANNOTATION: "r.example/sd:2",
            },
        )
    )
    pod = pod_of(ds)
    images = {c["name"]: c["image"] for c in pod["containers"] + pod["initContainers"]}
    assert images == {
        "nodesync": "r.example/spo:1",
        "log-enricher": "r.example/spo:1",
        "prepare-operator-dir": "r.example/spo:1",
        "selinuxd": "r.example/sd:2",
        "selinux-templates": "r.example/sd:2",
    }
    default = pod_of(daemonset.daemonset(spod()))
    assert {c["image"] for c in default["containers"] + default["initContainers"]} == {
        daemonset.DEFAULT_IMAGE
    }


def test_resources_replace_the_defaults_as_a_whole() -> None:
    ds = daemonset.daemonset(
        spod({"daemonResourceRequirements": {"requests": {"cpu": 1, "memory": "128Mi"}}})
    )
    assert container(ds, "nodesync")["resources"] == {"requests": {"cpu": "1", "memory": "128Mi"}}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {
            "enableSelinux": True,
            "enableLogEnricher": True,
            "hostProcVolumePath": "/hostproc",
            "verbosity": 1,
        },
        {"tolerations": [], "selinuxTypeTag": "unconfined_t", "enableMemoryOptimization": True},
        {
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "kubernetes.io/hostname"}
                    ]
                }
            },
            "imagePullSecrets": [{"name": "pull"}],
            "daemonResourceRequirements": {"limits": {"memory": "1Gi", "example.com/dongle": "1"}},
        },
    ],
)
def test_daemonset_validates_against_the_kubernetes_schema(spec: dict[str, Any]) -> None:
    kubernetes_validate.validate(
        daemonset.daemonset(spod(spec)), kubernetes_validate.latest_version(), strict=True
    )


def test_watch_namespace_annotation_restricts_nodesync_to_one_namespace() -> None:
    restricted = daemonset.daemonset(
        spod(annotations={daemonset.WATCH_NAMESPACE_ANNOTATION: "team-a"})
    )
    assert env_of(restricted)["WATCH_NAMESPACE"] == "team-a"
    assert changed_parts(daemonset.daemonset(spod()), restricted) == {"containers/nodesync/env"}
    assert "WATCH_NAMESPACE" not in env_of(daemonset.daemonset(spod()))
    blank = daemonset.daemonset(spod(annotations={daemonset.WATCH_NAMESPACE_ANNOTATION: " "}))
    assert "WATCH_NAMESPACE" not in env_of(blank)
