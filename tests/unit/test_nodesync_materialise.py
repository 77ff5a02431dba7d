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


def owner(name: str, kind: str = "SeccompProfile") -> dict[str, Any]:
    """The controller ownerReference Metacontroller puts on the ConfigMap of profile ``name``."""
    return {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def cm(namespace: str, name: str, payload: str | None = ALLOW, **meta: Any) -> dict[str, Any]:
    """The ConfigMap of SeccompProfile ``name``, owned by it as Metacontroller owns it."""
    metadata = configmap_metadata("SeccompProfile", namespace, name)
    metadata["ownerReferences"] = [owner(name)]
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
        (cm("ns", "../../../etc/cron.d/x"), reasons.CANNOT_GET_PATH),
        (cm("ns", "a..b"), reasons.CANNOT_GET_PATH),
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


FORGED = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "forged": True})


def forged(configmap: str, *owners: dict[str, Any], claims: str = "p") -> dict[str, Any]:
    """A ConfigMap named ``configmap`` with ``owners``, claiming profile ``claims`` (annotation)."""
    body = cm("ns", claims, FORGED)
    body["metadata"]["name"] = configmap
    body["metadata"]["ownerReferences"] = list(owners) or None
    return body


def forgeries() -> list[dict[str, Any]]:
    """ConfigMaps that are not their profile's, each asking for ns/p.json one way or another."""
    return [
        forged("seccomp-p-copy"),  # no owner
        forged("seccomp-p-copy2", owner("p")),  # owner p, but not p's ConfigMap name
        forged("seccomp-evil", owner("evil")),  # evil's ConfigMap, claiming p
        forged("seccomp-p-rec", owner("p", "ProfileRecording")),
        forged("seccomp-p-other", {**owner("p"), "apiVersion": "example.com/v1"}),
        forged("seccomp-p-ref", {**owner("p"), "controller": False}),
        forged("seccomp-q", {**owner("q"), "uid": ""}, claims="q"),
        forged("seccomp-p-se", owner("p", "SelinuxProfile")),
        forged("selinux-p", owner("p", "SelinuxProfile")),  # labelled seccomp, named selinux
    ]


def test_only_the_owners_configmap_counts(tmp_path: Path) -> None:
    metrics = Metrics()
    outcomes = materialise([*forgeries(), cm("ns", "p")], tmp_path, metrics=metrics)
    states = {o.configmap: (o.state, o.reason, o.owner is not None) for o in outcomes}
    assert states.pop("seccomp-p") == (ProfileState.INSTALLED, reasons.SAVED, True)
    assert set(states.values()) == {(ProfileState.ERROR, reasons.NOT_OWNED, False)}
    assert len(states) == len(forgeries())
    assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}
    assert metrics.value("seccomp_profile_error_total", reason=reasons.NOT_OWNED) == len(
        forgeries()
    )
    for outcome in outcomes:
        if outcome.owner is None:
            assert outcome.configmap in (outcome.message or "") and outcome.path is None


def test_a_forged_configmap_alone_writes_nothing_and_keeps_nothing(tmp_path: Path) -> None:
    materialise([cm("ns", "p")], tmp_path)
    assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}
    materialise(forgeries(), tmp_path)  # the real one is gone: its file goes, no forgery takes it
    assert tree(tmp_path) == {}


def test_forged_configmaps_by_watch_events_never_touch_the_real_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = Materialiser(tmp_path)
    m.converge([cm("ns", "p")])
    for forged in forgeries():
        outcome = m.upsert(forged)
        assert (outcome.state, outcome.reason, outcome.owner) == (
            ProfileState.ERROR,
            reasons.NOT_OWNED,
            None,
        )
        assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}
        assert m.delete(forged) is not None
        assert tree(tmp_path) == {"ns/p.json": ALLOW.encode()}
    refusals = [
        r for r in caplog.records if getattr(r, "spo_configmap", None) and r.levelname == "WARNING"
    ]
    assert {r.spo_configmap for r in refusals} == {f["metadata"]["name"] for f in forgeries()}  # type: ignore[attr-defined]
    assert all("nothing written" in r.getMessage() for r in refusals)


def test_a_configmap_that_loses_its_owner_loses_its_file(tmp_path: Path) -> None:
    """Orphaned (its profile deleted with --cascade=orphan): no longer its profile's."""
    m = Materialiser(tmp_path)
    m.converge([cm("ns", "p"), cm("ns", "q")])
    orphan = cm("ns", "p")
    del orphan["metadata"]["ownerReferences"]
    outcome = m.upsert(orphan)
    assert (outcome.state, outcome.reason) == (ProfileState.ERROR, reasons.NOT_OWNED)
    assert tree(tmp_path) == {"ns/q.json": ALLOW.encode()}


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


def test_name_comes_from_the_owner_when_the_annotation_is_missing(tmp_path: Path) -> None:
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
    # an invalid new version of b's own ConfigMap keeps b's file
    assert m.upsert(cm("ns", "b", "{broken")).state is ProfileState.ERROR
    assert set(tree(tmp_path)) == {"ns/a.json", "ns/b.json"}
    # a ConfigMap claiming a's file is refused, without touching it
    thief = cm("ns", "x", json.dumps({"defaultAction": "SCMP_ACT_LOG"}))
    thief["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = "a"
    assert m.upsert(thief).reason == reasons.NOT_OWNED
    assert tree(tmp_path)["ns/a.json"] == ALLOW.encode()
    deleted = m.delete(cm("ns", "b"))
    assert deleted is not None and deleted.name == "b"
    assert set(tree(tmp_path)) == {"ns/a.json"}
    assert m.delete(cm("ns", "never-seen")) is None
    assert metrics.value("seccomp_profile_total", operation="delete") == 1


# -- a symbolic link as the operator root ----------------------------------------------------


@pytest.mark.parametrize("link", ["seccomp", "seccomp/operator"])
def test_a_symlinked_root_is_refused_and_its_target_untouched(tmp_path: Path, link: str) -> None:
    kubelet, elsewhere = tmp_path / "kubelet", tmp_path / "elsewhere"
    target = elsewhere / "operator" if link == "seccomp" else elsewhere
    (target / "ns").mkdir(parents=True)
    (target / "ns/old.json").write_text("{}")
    target.chmod(0o700)
    (kubelet / link).parent.mkdir(parents=True)
    (kubelet / link).symlink_to(elsewhere)
    before = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*"))
    metrics = Metrics()
    m = Materialiser(kubelet, metrics=metrics)
    outcomes = m.converge([cm("ns", "p")])
    assert [(o.state, o.reason) for o in outcomes] == [(ProfileState.ERROR, reasons.CANNOT_SAVE)]
    assert "is a symbolic link to" in (outcomes[0].message or "")
    assert str(kubelet / link) in (outcomes[0].message or "")
    assert m.upsert(cm("ns", "q")).reason == reasons.CANNOT_SAVE
    m.delete(cm("ns", "p"))
    assert m.converge([]) == []
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == before
    assert (target / "ns/old.json").read_text() == "{}"  # never removed
    assert stat.S_IMODE(target.stat().st_mode) == 0o700  # its mode never changed
    assert metrics.value("seccomp_profile_error_total", reason=reasons.CANNOT_SAVE) >= 3


def test_a_symlinked_kubelet_dir_is_the_administrators_choice(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "kubelet").symlink_to(tmp_path / "real")
    [outcome] = materialise([cm("ns", "p")], tmp_path / "kubelet")
    assert outcome.state is ProfileState.INSTALLED
    assert (tmp_path / "real/seccomp/operator/ns/p.json").read_text() == ALLOW
