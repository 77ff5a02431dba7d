"""Merging the partial profiles of a ProfileRecording with mergeStrategy containers."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from hooks.api.selinuxprofile import SelinuxProfile
from hooks.cluster.contract import SyncRequest
from hooks.cluster.recording import controller
from hooks.cluster.selinux.translation import translate
from nodesync.enricher.merging import (
    MergeResult,
    merge_loop,
    merge_plan,
    merge_recording,
    merged_profiles,
    waiting_for_merge,
)
from nodesync.nodeio.cluster import ApiError
from tests.helpers.golden import golden_folder, request_of

GROUP = "security-profiles-operator.x-k8s.io"
RECORDING_LABEL = "spo.x-k8s.io/recording-id"
CONTAINER_LABEL = "spo.x-k8s.io/container-id"
PARTIAL_LABEL = "spo.x-k8s.io/partial"
X86_64 = "SCMP_ARCH_X86_64"
GOLDEN = golden_folder("recording/controller")


def recording(
    kind: str = "SeccompProfile",
    *,
    deleting: bool = True,
    strategy: str = "containers",
    reason: str | None = "WaitingForMerge",
    disabled: bool = False,
    uid: str = "uid-1",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": "shop", "name": "rec", "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    spec: dict[str, Any] = {
        "kind": kind,
        "recorder": "logs",
        "mergeStrategy": strategy,
        "podSelector": {},
    }
    if disabled:
        spec["disableProfileAfterRecording"] = True
    obj: dict[str, Any] = {"metadata": metadata, "spec": spec}
    if reason is not None:
        obj["status"] = {
            "conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": "m"}]
        }
    return obj


def _labels(container: str, partial: bool, rec: str = "rec") -> dict[str, str]:
    labels = {RECORDING_LABEL: rec, CONTAINER_LABEL: container}
    if partial:
        labels[PARTIAL_LABEL] = "true"
    return labels


def seccomp(
    name: str,
    container: str,
    names: list[str],
    *,
    partial: bool = True,
    arch: str = X86_64,
    action: str = "SCMP_ACT_ERRNO",
    rec: str = "rec",
    namespace: str = "shop",
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": _labels(container, partial, rec),
        },
        "spec": {
            "defaultAction": action,
            "architectures": [arch],
            "syscalls": [{"action": "SCMP_ACT_ALLOW", "names": names}],
        },
    }


def selinux(
    name: str, container: str, allow: dict[str, dict[str, list[str]]], *, partial: bool = True
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "SelinuxProfile",
        "metadata": {"name": name, "namespace": "shop", "labels": _labels(container, partial)},
        "spec": {"inherit": [{"kind": "System", "name": "container"}], "allow": allow},
    }


PARTIALS = [
    seccomp("rec-app-x2k4q", "app", ["write", "read"]),
    seccomp("rec-app-p9m3z", "app", ["openat", "read"], arch="SCMP_ARCH_AARCH64"),
    seccomp("rec-side-x2k4q", "side", ["nanosleep"]),
]


# -- when ---------------------------------------------------------------------------------------


def test_only_a_deleted_merging_recording_its_controller_calls_collected_is_merged() -> None:
    assert waiting_for_merge(recording())
    assert waiting_for_merge(recording("SelinuxProfile"))
    assert not waiting_for_merge(recording(deleting=False))
    assert not waiting_for_merge(recording(strategy="none"))
    assert not waiting_for_merge(recording(reason="Deleting"))  # pods still run or are uncollected
    assert not waiting_for_merge(recording(reason=None))
    assert not waiting_for_merge(recording("AppArmorProfile"))


def _finalize_status(case: str) -> dict[str, Any]:
    raw = request_of(GOLDEN / case)
    got = controller.sync(SyncRequest.model_validate(raw), "2026-01-02T00:00:00Z").to_wire()
    parent: dict[str, Any] = raw["parent"]
    parent["status"] = got["status"]
    return parent


def test_the_controllers_finalize_answer_is_the_merge_signal() -> None:
    assert waiting_for_merge(_finalize_status("finalize-merge-waits-for-the-merge-of-partials"))
    assert waiting_for_merge(_finalize_status("finalize-merge-selinux-partials-without-pods"))
    assert not waiting_for_merge(
        _finalize_status("finalize-merge-waits-for-running-replicas-before-the-merge")
    )
    assert not waiting_for_merge(_finalize_status("finalize-merge-done-when-merged"))


# -- what ---------------------------------------------------------------------------------------


def test_seccomp_merge_is_the_union_per_container_without_the_partial_label() -> None:
    merged = merged_profiles(recording(disabled=True), PARTIALS)
    assert [m["metadata"]["name"] for m in merged] == ["rec-app", "rec-side"]
    app = merged[0]
    assert app == {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {
            "name": "rec-app",
            "namespace": "shop",
            "labels": {RECORDING_LABEL: "rec", CONTAINER_LABEL: "app"},
        },
        "spec": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_AARCH64", X86_64],
            "syscalls": [{"action": "SCMP_ACT_ALLOW", "names": ["openat", "read", "write"]}],
            "disabled": True,
        },
    }
    assert "disabled" not in merged_profiles(recording(), PARTIALS)[0]["spec"]


def test_merge_is_the_same_whatever_the_order_of_the_listing() -> None:
    expected = json.dumps(merged_profiles(recording(), PARTIALS), sort_keys=True)
    shuffled = list(PARTIALS)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert json.dumps(merged_profiles(recording(), shuffled), sort_keys=True) == expected


def test_merge_ignores_other_recordings_namespaces_and_non_allow_rules() -> None:
    odd = seccomp("rec-app-odd", "app", ["read"], action="SCMP_ACT_LOG")
    odd["spec"]["syscalls"].append({"action": "SCMP_ACT_KILL", "names": ["ptrace"]})
    listing = [
        PARTIALS[0],
        odd,
        seccomp("other-app-x", "app", ["mount"], rec="other"),
        seccomp("rec-app-y", "app", ["reboot"], namespace="elsewhere"),
    ]
    (plan,) = merge_plan(recording(), listing)
    spec = plan.merged["spec"]
    assert spec["syscalls"] == [{"action": "SCMP_ACT_ALLOW", "names": ["read", "write"]}]
    assert spec["defaultAction"] == "SCMP_ACT_ERRNO"  # the partials disagree: deny by default
    assert plan.delete == ("rec-app-odd", "rec-app-x2k4q")
    assert any("defaultAction" in w for w in plan.warnings)
    assert any("SCMP_ACT_KILL" in w for w in plan.warnings)
    assert merge_plan(recording(deleting=False), PARTIALS) == []
    assert merge_plan(recording(strategy="none"), PARTIALS) == []


def test_selinux_merge_unions_allow_maps_and_stays_installable() -> None:
    partials = [
        selinux(
            "rec-app-a", "app", {"@self": {"process": ["signal"]}, "var_lib_t": {"file": ["read"]}}
        ),
        selinux("rec-app-b", "app", {"var_lib_t": {"file": ["write", "read"], "dir": ["search"]}}),
        # an edited partial: the merge does not let a denied rule in
        selinux(
            "rec-app-c", "app", {"kernel_t": {"file": ["read"]}, "tmp_t": {"file": ["relabelto"]}}
        ),
    ]
    (plan,) = merge_plan(recording("SelinuxProfile", disabled=True), partials)
    assert plan.merged["apiVersion"] == f"{GROUP}/v1alpha2"
    assert plan.merged["metadata"]["labels"] == {RECORDING_LABEL: "rec", CONTAINER_LABEL: "app"}
    assert plan.merged["spec"] == {
        "inherit": [{"kind": "System", "name": "container"}],
        "allow": {
            "@self": {"process": ["signal"]},
            "var_lib_t": {"dir": ["search"], "file": ["read", "write"]},
        },
        "disabled": True,
    }
    assert len(plan.warnings) == 2
    assert plan.delete == ("rec-app-a", "rec-app-b", "rec-app-c")
    cil = translate(SelinuxProfile.model_validate(plan.merged))
    assert "(allow process var_lib_t ( file ( read write )))" in cil


# -- how ----------------------------------------------------------------------------------------


class Cluster:
    """Profiles by (plural, namespace, name), and every call made, in order."""

    def __init__(self, profiles: list[dict[str, Any]], plural: str = "seccompprofiles") -> None:
        self.plural = plural
        self.objects = {p["metadata"]["name"]: p for p in profiles}
        self.calls: list[tuple[str, ...]] = []
        self.fail_create: ApiError | None = None
        self.fail_delete: dict[str, ApiError] = {}

    def list_profiles(self, plural: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list", plural, namespace, selector))
        key, _, value = selector.partition("=")
        return [p for p in self.objects.values() if p["metadata"]["labels"].get(key) == value]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if self.fail_create is not None:
            raise self.fail_create
        if name in self.objects:
            raise ApiError(409, f"{name} already exists")
        self.objects[name] = body
        return body

    def delete(self, plural: str, namespace: str, name: str) -> None:
        self.calls.append(("delete", plural, namespace, name))
        if name in self.fail_delete:
            raise self.fail_delete[name]
        if self.objects.pop(name, None) is None:
            raise ApiError(404, f"{name} not found")

    def merge(self, rec: dict[str, Any]) -> MergeResult:
        return merge_recording(rec, self.list_profiles, self.create, self.delete)


def test_merge_creates_then_deletes_the_partials() -> None:
    cluster = Cluster([*PARTIALS, seccomp("rec-app-kept", "app", ["read"], partial=False)])
    result = cluster.merge(recording())
    assert cluster.calls[0] == ("list", "seccompprofiles", "shop", f"{RECORDING_LABEL}=rec")
    assert cluster.calls[1:] == [
        ("create", "rec-app"),
        ("delete", "seccompprofiles", "shop", "rec-app-p9m3z"),
        ("delete", "seccompprofiles", "shop", "rec-app-x2k4q"),
        ("create", "rec-side"),
        ("delete", "seccompprofiles", "shop", "rec-side-x2k4q"),
    ]
    assert result.created == ["rec-app", "rec-side"]
    assert sorted(cluster.objects) == ["rec-app", "rec-app-kept", "rec-side"]
    assert result.errors == [] and result.kept == []
    # A second call finds nothing partial left, and changes nothing.
    before = dict(cluster.objects)
    again = cluster.merge(recording())
    assert again == MergeResult() and cluster.objects == before


def test_merge_does_nothing_at_all_before_the_controller_says_so() -> None:
    cluster = Cluster(list(PARTIALS))
    assert cluster.merge(recording(reason="Deleting")) == MergeResult()
    assert cluster.calls == []


def test_already_exists_deletes_nothing_then_the_listed_merged_profile_covers_the_partials() -> (
    None
):
    cluster = Cluster(list(PARTIALS))
    other_node = Cluster(list(PARTIALS))
    other_node.merge(recording())
    merged_there = other_node.objects["rec-app"]
    # This node lists before the other created it, and creates after: 409.
    cluster.fail_create = ApiError(409, "already exists")
    result = cluster.merge(recording())
    assert result.created == [] and result.errors == []
    assert not [c for c in cluster.calls if c[0] == "delete"]
    assert set(result.kept) == {p["metadata"]["name"] for p in PARTIALS}
    # Next round: the merged profile is listed; a partial written after the merge is kept.
    cluster.fail_create = None
    cluster.objects["rec-app"] = merged_there
    cluster.objects["rec-side"] = other_node.objects["rec-side"]
    late = seccomp("rec-app-late", "app", ["read", "ptrace"])
    cluster.objects["rec-app-late"] = late
    cluster.calls.clear()
    result = cluster.merge(recording())
    assert not [c for c in cluster.calls if c[0] == "create"]
    assert sorted(result.deleted) == ["rec-app-p9m3z", "rec-app-x2k4q", "rec-side-x2k4q"]
    assert result.kept == ["rec-app-late"]
    assert cluster.objects["rec-app-late"] is late
    assert cluster.objects["rec-app"] is merged_there


def test_both_nodes_compute_byte_identical_merged_profiles() -> None:
    first, second = Cluster(list(PARTIALS)), Cluster(list(reversed(PARTIALS)))
    first.merge(recording())
    second.merge(recording())
    for name in ("rec-app", "rec-side"):
        assert json.dumps(first.objects[name], sort_keys=True) == json.dumps(
            second.objects[name], sort_keys=True
        )


def test_deleted_already_is_fine_other_failures_are_reported_and_retried() -> None:
    cluster = Cluster(list(PARTIALS))
    cluster.fail_delete = {
        "rec-app-p9m3z": ApiError(404, "gone"),
        "rec-app-x2k4q": ApiError(500, "etcd down"),
    }
    result = cluster.merge(recording())
    assert "rec-app-p9m3z" in result.deleted
    assert "rec-app-x2k4q" not in result.deleted
    assert len(result.errors) == 1 and "rec-app-x2k4q" in result.errors[0]
    assert "500" in result.errors[0]
    failing = Cluster(list(PARTIALS))
    failing.fail_create = ApiError(403, "forbidden")
    result = failing.merge(recording())
    assert result.created == [] and len(result.errors) == 2
    assert not [c for c in failing.calls if c[0] == "delete"]


def test_a_name_taken_by_another_containers_profile_keeps_the_partials() -> None:
    # Container "app" of a pod named "web" (mergeStrategy none before) took "rec-app-web".
    taken = seccomp("rec-app-web", "app", ["read"], partial=False)
    partial = seccomp("rec-app-web-x2k4q", "app-web", ["read"])
    cluster = Cluster([taken, partial])
    (plan,) = merge_plan(recording(), list(cluster.objects.values()))
    assert plan.existing and plan.delete == () and plan.kept == ("rec-app-web-x2k4q",)
    assert "container 'app'" in plan.kept_because
    result = cluster.merge(recording())
    assert result.kept == ["rec-app-web-x2k4q"]
    assert [c[0] for c in cluster.calls] == ["list"]


def test_selinux_recordings_are_merged_through_selinuxprofiles() -> None:
    cluster = Cluster(
        [
            selinux("rec-app-a", "app", {"var_lib_t": {"file": ["read"]}}),
            selinux("rec-app-b", "app", {"var_lib_t": {"file": ["write"]}}),
        ],
        "selinuxprofiles",
    )
    result = cluster.merge(recording("SelinuxProfile"))
    assert cluster.calls[0][1] == "selinuxprofiles"
    assert result.created == ["rec-app"]
    assert result.deleted == ["rec-app-a", "rec-app-b"]
    assert cluster.objects["rec-app"]["spec"]["allow"] == {"var_lib_t": {"file": ["read", "write"]}}


# -- the loop -----------------------------------------------------------------------------------


def test_merge_loop_waits_one_round_survives_failures_and_stops() -> None:
    cluster = Cluster(list(PARTIALS))
    stop = threading.Event()
    rounds: list[Any] = [
        [recording(reason="Deleting")],  # pods still running: nothing
        [recording()],  # first seen waiting: wait one more round
        RuntimeError("apiserver down"),
        [recording(uid="uid-2")],  # recreated under the same name: a new wait
        [recording(uid="uid-2")],  # merged now
    ]
    seen_calls: list[int] = []

    def list_recordings() -> list[dict[str, Any]]:
        seen_calls.append(len(cluster.calls))
        answer = rounds.pop(0)
        if not rounds:
            stop.set()
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    merge_loop(list_recordings, cluster.list_profiles, cluster.create, cluster.delete, stop, 0.0)
    assert seen_calls[:4] == [0, 0, 0, 0]  # nothing merged before the last round
    assert sorted(cluster.objects) == ["rec-app", "rec-side"]


def test_merge_loop_logs_a_failed_merge_and_goes_on() -> None:
    stop = threading.Event()
    calls = {"n": 0}

    def list_recordings() -> list[dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] >= 3:
            stop.set()
        return [recording()]

    def list_profiles(plural: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        raise ApiError(0, "connection refused")

    def never(*args: Any) -> None:
        pytest.fail("nothing is created or deleted when the list fails")

    merge_loop(list_recordings, list_profiles, never, never, stop, 0.0)
    assert calls["n"] == 3
