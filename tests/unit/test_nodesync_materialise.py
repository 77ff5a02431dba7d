"""The materialiser on a real directory: atomic writes, fixed modes, pruning, idempotence."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hooks.api.configmaps import MAX_CONFIGMAP_BYTES, configmap_metadata
from hooks.api.profilestate import ProfileState
from nodesync.nodeio import reasons
from nodesync.nodeio.atomicfiles import Perms
from nodesync.nodeio.metrics import Metrics
from nodesync.seccomp.materialising import Materialiser, materialise
from nodesync.seccomp.profiles import read_configmaps
from tests.helpers.unavailable import unavailable

ALLOW = json.dumps({"defaultAction": "SCMP_ACT_ALLOW"})


def cm(namespace: str, name: str, payload: str | None = ALLOW, **meta: Any) -> dict[str, Any]:
    metadata = configmap_metadata("SeccompProfile", namespace, name)
    metadata.update(meta)
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if payload is not None:
        body["data"] = {"profile.json": payload}
    return body


def tree(root: Path) -> dict[str, bytes]:
    operator = root / "seccomp" / "operator"
    return {
        str(path.relative_to(operator)): path.read_bytes()
        for path in sorted(operator.rglob("*"))
        if path.is_file()
    }


def test_writes_exactly_the_payload_with_fixed_modes(tmp_path: Path) -> None:
    payload = '{"defaultAction": "SCMP_ACT_ERRNO",  "syscalls": []}\n'
    [outcome] = materialise([cm("team-a", "p1", payload)], tmp_path)
    path = tmp_path / "seccomp/operator/team-a/p1.json"
    assert path.read_bytes() == payload.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o744
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o744
    assert (path.stat().st_uid, path.stat().st_gid) == (os.geteuid(), os.getegid())
    assert outcome.state is ProfileState.INSTALLED
    assert outcome.changed and outcome.message is None
    assert (outcome.namespace, outcome.name, outcome.kind) == ("team-a", "p1", "SeccompProfile")
    assert outcome.path == "team-a/p1.json"


def test_second_run_writes_nothing(tmp_path: Path) -> None:
    cms = [cm("ns", f"p{i}") for i in range(20)]
    materialise(cms, tmp_path)
    before = {p: p.stat().st_ino for p in (tmp_path / "seccomp/operator/ns").iterdir()}
    metrics = Metrics()
    outcomes = materialise(cms, tmp_path, metrics=metrics)
    assert not any(o.changed for o in outcomes)
    assert metrics.value("seccomp_profile_total", operation="update") == 0
    assert {p: p.stat().st_ino for p in (tmp_path / "seccomp/operator/ns").iterdir()} == before


def test_converge_removes_only_unrequested_things_under_operator(tmp_path: Path) -> None:
    operator = tmp_path / "seccomp/operator"
    (operator / "gone").mkdir(parents=True)
    (operator / "gone/old.json").write_text("{}")
    (operator / "ns").mkdir()
    (operator / "ns/.p.json.deadbeef.tmp").write_text("{")  # left by a crash
    (operator / "ns/nested").mkdir()
    (operator / "ns/nested/x").write_text("x")
    (operator / "stray.json").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.json").write_text("keep")
    (operator / "ns/link.json").symlink_to(outside / "keep.json")
    (operator / "linkdir").symlink_to(outside)
    (tmp_path / "seccomp/mine.json").write_text("kubelet's own")
    metrics = Metrics()
    materialise([cm("ns", "p")], tmp_path, metrics=metrics)
    assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}
    assert sorted(os.listdir(operator)) == ["ns"]
    assert (outside / "keep.json").read_text() == "keep"
    assert (tmp_path / "seccomp/mine.json").read_text() == "kubelet's own"
    assert metrics.value("seccomp_profile_total", operation="delete") == 2  # old.json, link.json
    assert metrics.value("seccomp_profile_total", operation="update") == 1


def test_file_replaced_in_place_keeps_readers_safe(tmp_path: Path) -> None:
    materialise([cm("ns", "p")], tmp_path)
    path = tmp_path / "seccomp/operator/ns/p.json"
    handle = path.open("rb")
    new = json.dumps({"defaultAction": "SCMP_ACT_LOG"})
    [outcome] = materialise([cm("ns", "p", new)], tmp_path)
    assert outcome.changed
    assert handle.read() == ALLOW.encode()  # the open file is the old inode, intact
    handle.close()
    assert path.read_text() == new


def test_drifted_mode_is_repaired(tmp_path: Path) -> None:
    materialise([cm("ns", "p")], tmp_path)
    path = tmp_path / "seccomp/operator/ns/p.json"
    path.chmod(0o600)
    path.parent.chmod(0o700)
    [outcome] = materialise([cm("ns", "p")], tmp_path)
    assert outcome.changed
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o744


def test_ownership_is_the_configured_one(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        unavailable("changing ownership needs root (CI runs as root)")
    materialise([cm("ns", "p")], tmp_path, perms=Perms(uid=65535, gid=65534))
    for path in (tmp_path / "seccomp/operator", tmp_path / "seccomp/operator/ns/p.json"):
        assert (path.stat().st_uid, path.stat().st_gid) == (65535, 65534)


@pytest.mark.parametrize(
    ("configmap", "reason"),
    [
        (cm("ns", "bad", "{not json"), reasons.INVALID_PROFILE),
        (cm("ns", "bad", "[1, 2]"), reasons.INVALID_PROFILE),
        (cm("ns", "bad", None), reasons.INVALID_PROFILE),
        (cm("ns", "bad", "{}" + " " * MAX_CONFIGMAP_BYTES), reasons.INVALID_PROFILE),
        (
            cm("ns", "bad", annotations={"spo.x-k8s.io/profile-name": "../../../etc/cron.d/x"}),
            reasons.CANNOT_GET_PATH,
        ),
        (
            cm("ns", "bad", annotations={"spo.x-k8s.io/profile-name": "a..b"}),
            reasons.CANNOT_GET_PATH,
        ),
        (cm("..", "bad"), reasons.CANNOT_GET_PATH),
    ],
)
def test_bad_configmap_is_an_error_and_the_rest_is_served(
    tmp_path: Path, configmap: dict[str, Any], reason: str
) -> None:
    metrics = Metrics()
    outcomes = materialise([configmap, cm("ns", "good")], tmp_path, metrics=metrics)
    by_name = {o.configmap: o for o in outcomes}
    bad = by_name[configmap["metadata"]["name"]]
    assert bad.state is ProfileState.ERROR
    assert bad.reason == reason
    assert bad.message
    assert by_name["seccomp-good"].state is ProfileState.INSTALLED
    assert tree(tmp_path) == {"ns/good.json": ALLOW.encode()}
    assert metrics.value("seccomp_profile_error_total", reason=reason) == 1
    assert not list(tmp_path.rglob("*cron*")) and not (tmp_path.parent / "etc").exists()


def test_invalid_update_keeps_the_installed_file(tmp_path: Path) -> None:
    materialise([cm("ns", "p")], tmp_path)
    [outcome] = materialise([cm("ns", "p", "{broken")], tmp_path)
    assert outcome.state is ProfileState.ERROR
    assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}


def test_two_configmaps_for_one_file_conflict(tmp_path: Path) -> None:
    first = cm("ns", "p")
    second = cm("ns", "p", json.dumps({"defaultAction": "SCMP_ACT_LOG"}))
    second["metadata"]["name"] = "seccomp-p-copy"
    outcomes = materialise([second, first], tmp_path)
    states = {o.configmap: (o.state, o.reason) for o in outcomes}
    assert states["seccomp-p"] == (ProfileState.INSTALLED, reasons.SAVED)
    assert states["seccomp-p-copy"] == (ProfileState.ERROR, reasons.FILE_CONFLICT)
    assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}


def test_unsupported_kernel_installs_nothing(tmp_path: Path) -> None:
    outcomes = materialise([cm("ns", "p")], tmp_path, supported=False)
    assert [(o.state, o.message, o.reason) for o in outcomes] == [
        (ProfileState.ERROR, "seccomp is not supported on this node", reasons.SECCOMP_NOT_SUPPORTED)
    ]
    assert not (tmp_path / "seccomp").exists()


def test_other_objects_and_kinds_are_ignored() -> None:
    selinux = cm("ns", "p")
    selinux["metadata"]["labels"]["spo.x-k8s.io/profile-kind"] = "SelinuxProfile"
    secret = cm("ns", "q")
    secret["kind"] = "Secret"
    assert read_configmaps([selinux, secret, {"kind": "ConfigMap", "metadata": {}}]) == []


def test_name_falls_back_to_the_configmap_name_without_prefix(tmp_path: Path) -> None:
    body = cm("ns", "p")
    del body["metadata"]["annotations"]
    [outcome] = materialise([body], tmp_path)
    assert outcome.name == "p" and outcome.path == "ns/p.json"


def test_incremental_changes(tmp_path: Path) -> None:
    metrics = Metrics()
    m = Materialiser(tmp_path, metrics=metrics)
    m.converge([cm("ns", "a")])
    b = m.upsert(cm("ns", "b"))
    assert b.changed and b.state is ProfileState.INSTALLED
    assert not m.upsert(cm("ns", "b")).changed
    # renaming the profile (annotation) moves the file
    moved = cm("ns", "b", annotations={"spo.x-k8s.io/profile-name": "b2"})
    assert m.upsert(moved).path == "ns/b2.json"
    assert set(tree(tmp_path)) == {"ns/a.json", "ns/b2.json"}
    # a ConfigMap asking for a file another one holds is refused, without touching it
    thief = cm("ns", "x", json.dumps({"defaultAction": "SCMP_ACT_LOG"}))
    thief["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = "a"
    assert m.upsert(thief).reason == reasons.FILE_CONFLICT
    assert tree(tmp_path)["ns/a.json"] == ALLOW.encode()
    deleted = m.delete(moved)
    assert deleted is not None and deleted.name == "b2"
    assert set(tree(tmp_path)) == {"ns/a.json"}
    assert m.delete(cm("ns", "never-seen")) is None
    assert metrics.value("seccomp_profile_total", operation="delete") == 2  # b (moved) and b2
