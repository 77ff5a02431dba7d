"""The DaemonSets computed from a SecurityProfilesOperatorDaemon: nodesync's and the log
enricher's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.cluster.spod import daemonset

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


def enricher(spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The log enricher's DaemonSet of a spod with ``enableLogEnricher`` (and ``spec``)."""
    wanted = daemonset.daemonsets(spod({"enableLogEnricher": True, **(spec or {})}, **kwargs))
    [nodesync, log_enricher] = wanted
    assert nodesync == daemonset.daemonset(
        spod({"enableLogEnricher": True, **(spec or {})}, **kwargs)
    )
    return log_enricher


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


def test_daemonsets_are_deterministic_and_share_nothing_between_calls() -> None:
    every = spod({"enableSelinux": True, "enableLogEnricher": True})
    first = daemonset.daemonsets(every)
    second = daemonset.daemonsets(every)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    for ds in first:
        pod_of(ds)["tolerations"].append({"operator": "Exists"})
        pod_of(ds)["containers"][0]["securityContext"]["capabilities"]["drop"].clear()
        pod_of(ds)["containers"][0]["env"].clear()
    container(first[0], "nodesync")["resources"]["limits"]["cpu"] = "9"
    container(first[1], "log-enricher")["resources"]["limits"]["cpu"] = "9"
    third = daemonset.daemonsets(every)
    assert third == second
    for ds in third:
        assert daemonset.default_tolerations() == pod_of(ds)["tolerations"]


def test_the_log_enricher_is_a_second_daemonset_only_when_enabled() -> None:
    assert daemonset.daemonsets(spod()) == [daemonset.daemonset(spod())]
    assert daemonset.daemonsets(spod({"enableLogEnricher": False})) == [daemonset.daemonset(spod())]
    nodesync, log_enricher = daemonset.daemonsets(spod({"enableLogEnricher": True}))
    # Turning the log enricher on does not touch (nor roll) nodesync's DaemonSet.
    assert nodesync == daemonset.daemonset(spod())
    assert log_enricher == daemonset.log_enricher_daemonset(spod())
    assert log_enricher["metadata"] == {
        "name": "spod-log-enricher",
        "namespace": "security-profiles-operator",
        "labels": {
            "app.kubernetes.io/name": "spo-log-enricher",
            "app.kubernetes.io/instance": "spod",
            "app.kubernetes.io/part-of": "security-profiles-operator",
        },
    }
    assert log_enricher["spec"]["selector"] == daemonset.log_enricher_selector("spod")
    assert log_enricher["spec"]["updateStrategy"] == nodesync["spec"]["updateStrategy"]


def test_each_daemonset_selects_its_own_pods_only() -> None:
    nodesync, log_enricher = daemonset.daemonsets(spod({"enableLogEnricher": True}))

    def selects(ds: dict[str, Any], pod_labels: dict[str, str]) -> bool:
        return bool(ds["spec"]["selector"]["matchLabels"].items() <= pod_labels.items())

    nodesync_pods = nodesync["spec"]["template"]["metadata"]["labels"]
    enricher_pods = log_enricher["spec"]["template"]["metadata"]["labels"]
    assert selects(nodesync, nodesync_pods) and selects(log_enricher, enricher_pods)
    assert not selects(nodesync, enricher_pods) and not selects(log_enricher, nodesync_pods)


def test_the_log_enricher_selector_is_fixed_whatever_the_spec() -> None:
    for spec in (
        {},
        {"enableSelinux": True, "verbosity": 1, "hostProcVolumePath": "/hostproc"},
        {"tolerations": [], "enableMemoryOptimization": True},
    ):
        assert enricher(spec)["spec"]["selector"] == {
            "matchLabels": {
                "app.kubernetes.io/name": "spo-log-enricher",
                "app.kubernetes.io/instance": "spod",
            }
        }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"enableMemoryOptimization": True}, set()),
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
        ({"enableLogEnricher": True}, set()),
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


def test_memory_optimisation_is_an_env_var_of_the_log_enricher_only() -> None:
    """nodesync caches no pods: the log enricher's pod cache is what the flag makes small."""
    on = enricher({"enableMemoryOptimization": True})
    assert env_of(on, "log-enricher")["ENABLE_MEMORY_OPTIMIZATION"] == "true"
    off = enricher({"enableMemoryOptimization": False})
    assert "ENABLE_MEMORY_OPTIMIZATION" not in env_of(off, "log-enricher")
    assert "ENABLE_MEMORY_OPTIMIZATION" not in env_of(
        daemonset.daemonset(spod({"enableMemoryOptimization": True}))
    )
    assert changed_parts(off, on) == {"containers/log-enricher/env"}


def test_verbosity_turns_on_debug_logs_of_our_containers() -> None:
    nodesync, log_enricher = daemonset.daemonsets(spod({"verbosity": 1, "enableLogEnricher": True}))
    assert env_of(nodesync)["LOG_LEVEL"] == "debug"
    assert env_of(log_enricher, "log-enricher")["LOG_LEVEL"] == "debug"
    assert "LOG_LEVEL" not in env_of(daemonset.daemonset(spod({"verbosity": 0})))
    assert "LOG_LEVEL" not in env_of(enricher({"verbosity": 0}), "log-enricher")


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
    ds = enricher()
    pod = pod_of(ds)
    assert pod["serviceAccountName"] == "spo-log-enricher"
    assert pod["hostPID"] is True
    # the proc connector (process events) exists in the host's network namespace only
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    # nodesync's group (65535): the metrics socket is given to it
    assert pod["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "supplementalGroups": [65535],
    }
    assert "initContainers" not in pod
    [log_enricher] = pod["containers"]
    assert log_enricher["name"] == "log-enricher"
    assert log_enricher["command"] == ["spo", "log-enricher"]
    assert log_enricher["args"] == [
        "--state-dir=/var/lib/security-profiles-operator/log-enricher",
        # the audit counters go to nodesync's /metrics-spod, not to the host's network
        "--metrics-socket=/var/run/security-profiles-operator/log-enricher-metrics.sock",
        "--metrics-socket-group=65535",
    ]
    mounts = {m["name"]: m for m in log_enricher["volumeMounts"]}
    assert mounts["host-audit-log"] == {
        "name": "host-audit-log",
        "mountPath": "/var/log/audit",
        "readOnly": True,
    }
    # The saved position in the audit log outlives the pod: a host directory, read-write.
    assert mounts["state"] == {
        "name": "state",
        "mountPath": "/var/lib/security-profiles-operator/log-enricher",
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["hostPath"] == {
        "path": "/var/lib/security-profiles-operator/log-enricher",
        "type": "DirectoryOrCreate",
    }
    assert volumes["host-audit-log"]["hostPath"]["path"] == "/var/log/audit"
    assert volumes["metrics-socket"]["hostPath"] == {
        "path": "/var/run/security-profiles-operator",
        "type": "DirectoryOrCreate",
    }
    assert "readOnly" not in mounts["metrics-socket"]
    assert set(mounts) == set(volumes) == {"host-audit-log", "state", "tmp", "metrics-socket"}
    assert log_enricher["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},  # to subscribe to process events
        "seLinuxOptions": {"type": "spc_t"},
    }
    assert log_enricher["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "128Mi"},
    }
    env = {e["name"]: e for e in log_enricher["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["METRICS_BIND"]["value"] == "0.0.0.0:8086"
    assert set(env) == {"NODE_NAME", "METRICS_BIND", "PYTHONDONTWRITEBYTECODE"}
    assert log_enricher["ports"] == [{"name": "metrics", "containerPort": 8086, "protocol": "TCP"}]
    assert log_enricher["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert log_enricher["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_nodesync_never_shares_the_host_pid_namespace_nor_reads_the_audit_log() -> None:
    for spec in (
        {},
        {"enableLogEnricher": True},
        {"enableLogEnricher": True, "enableSelinux": True},
    ):
        pod = pod_of(daemonset.daemonset(spod(spec)))
        assert "hostPID" not in pod
        assert [c["name"] for c in pod["containers"]] in (["nodesync"], ["nodesync", "selinuxd"])
        assert not any(v["name"] in ("host-audit-log", "host-proc") for v in pod["volumes"])


def test_the_log_enricher_is_scheduled_as_nodesync() -> None:
    spec = {
        "enableLogEnricher": True,
        "priorityClassName": "spo-critical",
        "tolerations": [{"operator": "Exists"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "audit", "operator": "Exists"}]}
                    ]
                }
            }
        },
        "imagePullSecrets": [{"name": "pull"}],
    }
    nodesync, log_enricher = daemonset.daemonsets(spod(spec))
    for field in ("priorityClassName", "tolerations", "affinity", "imagePullSecrets"):
        assert pod_of(log_enricher)[field] == pod_of(nodesync)[field], field
    default_nodesync, default_enricher = daemonset.daemonsets(spod({"enableLogEnricher": True}))
    for field in ("priorityClassName", "tolerations"):
        assert pod_of(default_enricher)[field] == pod_of(default_nodesync)[field], field
    assert "affinity" not in pod_of(default_enricher)
    assert "imagePullSecrets" not in pod_of(default_enricher)


def test_the_log_enricher_takes_the_type_tag_and_the_watched_namespace() -> None:
    tagged = enricher({"selinuxTypeTag": "unconfined_t"})
    assert container(tagged, "log-enricher")["securityContext"]["seLinuxOptions"] == {
        "type": "unconfined_t"
    }
    restricted = enricher(annotations={daemonset.WATCH_NAMESPACE_ANNOTATION: " team-a "})
    assert env_of(restricted, "log-enricher")["WATCH_NAMESPACE"] == "team-a"
    assert changed_parts(enricher(), restricted) == {"containers/log-enricher/env"}
    blank = enricher(annotations={daemonset.WATCH_NAMESPACE_ANNOTATION: " "})
    assert "WATCH_NAMESPACE" not in env_of(blank, "log-enricher")


def test_custom_host_proc_is_mounted_for_the_log_enricher_only() -> None:
    ds = enricher({"hostProcVolumePath": "/hostproc"})
    log_enricher = container(ds, "log-enricher")
    assert log_enricher["args"][-1] == "--proc-dir=/host/proc"
    assert {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True} in log_enricher[
        "volumeMounts"
    ]
    [volume] = [v for v in pod_of(ds)["volumes"] if v["name"] == "host-proc"]
    assert volume["hostPath"] == {"path": "/hostproc", "type": "Directory"}
    assert changed_parts(enricher(), ds) == {
        "containers/log-enricher/args",
        "containers/log-enricher/volumeMounts",
        "volumes/host-proc/added",
    }
    nodesync = daemonset.daemonset(
        spod({"enableLogEnricher": True, "hostProcVolumePath": "/hostproc"})
    )
    assert not any(
        m["name"] == "host-proc" for m in container(nodesync, "nodesync")["volumeMounts"]
    )


def test_images_come_from_annotations_or_defaults() -> None:
    wanted = daemonset.daemonsets(
        spod(
            {"enableSelinux": True, "enableLogEnricher": True},
            annotations={
                daemonset.IMAGE_ANNOTATION: "r.example/spo:1",
                daemonset.SELINUXD_IMAGE_ANNOTATION: "r.example/sd:2",
            },
        )
    )
    images = {
        c["name"]: c["image"]
        for ds in wanted
        for c in pod_of(ds)["containers"] + pod_of(ds).get("initContainers", [])
    }
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
def test_daemonsets_validate_against_the_kubernetes_schema(spec: dict[str, Any]) -> None:
    for ds in [daemonset.daemonset(spod(spec)), daemonset.log_enricher_daemonset(spod(spec))]:
        kubernetes_validate.validate(ds, kubernetes_validate.latest_version(), strict=True)


def test_watch_namespace_annotation_restricts_nodesync_to_one_namespace() -> None:
    restricted = daemonset.daemonset(
        spod(annotations={daemonset.WATCH_NAMESPACE_ANNOTATION: "team-a"})
    )
    assert env_of(restricted)["WATCH_NAMESPACE"] == "team-a"
    assert changed_parts(daemonset.daemonset(spod()), restricted) == {"containers/nodesync/env"}
    assert "WATCH_NAMESPACE" not in env_of(daemonset.daemonset(spod()))
    blank = daemonset.daemonset(spod(annotations={daemonset.WATCH_NAMESPACE_ANNOTATION: " "}))
    assert "WATCH_NAMESPACE" not in env_of(blank)
