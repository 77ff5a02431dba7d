"""The local mode never converges on a partial view of its folder, and one malformed object
is an error for that one alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nodesync.command import nodesync as command
from tests.helpers.owners import owner_reference

CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "seccomp-keep",
        "namespace": "team-a",
        "labels": {"spo.x-k8s.io/profile-kind": "SeccompProfile"},
        "annotations": {"spo.x-k8s.io/profile-name": "keep"},
        "ownerReferences": [owner_reference("SeccompProfile", "keep")],
    },
    "data": {"profile.json": '{"defaultAction": "SCMP_ACT_LOG"}\n'},
}


def _argv(folder: Path, root: Path) -> list[str]:
    return [
        "--from-dir",
        str(folder),
        "--kubelet-dir",
        str(root),
        "--once",
        "--node-name",
        "n1",
        "--metrics-bind",
        "",
    ]


def _install(folder: Path, root: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "keep.yaml").write_text(yaml.safe_dump(CONFIGMAP))
    assert command.main(_argv(folder, root)) == 0
    path = root / "seccomp" / "operator" / "team-a" / "keep.json"
    assert path.read_text() == '{"defaultAction": "SCMP_ACT_LOG"}\n'
    return path


def test_a_missing_folder_removes_nothing(tmp_path: Path) -> None:
    installed = _install(tmp_path / "in", tmp_path / "root")
    assert command.main(_argv(tmp_path / "typo", tmp_path / "root")) == 2
    assert installed.exists()


def test_an_unreadable_file_removes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    installed = _install(folder, tmp_path / "root")
    (folder / "half-saved.yaml").write_text("kind: [unclosed\n")
    assert command.main(_argv(folder, tmp_path / "root")) == 2
    assert installed.exists()


MALFORMED = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"},
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "seccomp-a",
            "namespace": ["a"],
            "labels": {"spo.x-k8s.io/profile-kind": "SeccompProfile"},
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "selinux-a",
            "namespace": ["a"],
            "labels": {"spo.x-k8s.io/profile-kind": "SelinuxProfile"},
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": ["spo.x-k8s.io/profile-kind"]},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"spo.x-k8s.io/profile-kind": 5}},
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": 7,
            "namespace": "a",
            "labels": {"spo.x-k8s.io/profile-kind": "SeccompProfile"},
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "seccomp-keep",
            "namespace": "a",
            "labels": {"spo.x-k8s.io/profile-kind": "SeccompProfile"},
            "annotations": "keep",
            "ownerReferences": "me",
        },
        "data": "x",
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "seccomp-keep",
            "namespace": "a",
            "labels": {"spo.x-k8s.io/profile-kind": "SeccompProfile"},
            "ownerReferences": ["me", 5, {"controller": "yes"}],
        },
        "data": ["x"],
    },
]


@pytest.mark.parametrize("selinux", [False, True], ids=["seccomp", "with-selinux"])
@pytest.mark.parametrize("bad", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_one_malformed_object_is_an_error_for_it_alone(
    tmp_path: Path, bad: dict[str, object], selinux: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root = tmp_path / "in", tmp_path / "root"
    folder.mkdir()
    (folder / "bad.yaml").write_text(yaml.safe_dump(bad))
    (folder / "keep.yaml").write_text(yaml.safe_dump(CONFIGMAP))
    extra = (
        [
            "--selinux-dir",
            str(tmp_path / "drop"),
            "--selinux-installer",
            "batch",
            "--semodule-root",
            str(tmp_path / "store"),
        ]
        if selinux
        else []
    )
    # an object labelled for SELinux is nobody's business while SELinux is off
    ignored = not selinux and "SelinuxProfile" in str(bad)
    capsys.readouterr()
    assert command.main([*_argv(folder, root), *extra]) == (0 if ignored else 1)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(summary["errors"]) == (0 if ignored else 1), summary
    assert (
        root / "seccomp/operator/team-a/keep.json"
    ).read_text() == '{"defaultAction": "SCMP_ACT_LOG"}\n'
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.json")) == [
        "seccomp/operator/team-a/keep.json"
    ]


@pytest.mark.parametrize("link", ["seccomp", "seccomp/operator"])
def test_a_symlinked_operator_root_is_refused_with_a_clear_error(
    tmp_path: Path, link: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root, elsewhere = tmp_path / "in", tmp_path / "root", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "keep.yaml").write_text(yaml.safe_dump(CONFIGMAP))
    (root / link).parent.mkdir(parents=True)
    (root / link).symlink_to(elsewhere)
    assert command.main(_argv(folder, root)) == 1
    out, err = capsys.readouterr()
    [error] = json.loads(out.strip().splitlines()[-1])["errors"]
    assert error["reason"] == "CannotSaveSeccompProfile"
    assert error["message"] == (
        f"{root / link} is a symbolic link to {elsewhere}: nodesync does not write through "
        "symbolic links"
    )
    assert error["message"] in err  # and logged
    assert list(elsewhere.rglob("*")) == []


def test_a_symlinked_selinux_drop_dir_is_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, drop, elsewhere = tmp_path / "in", tmp_path / "drop", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "old_ns.cil").write_text("(block old_ns)\n")
    drop.symlink_to(elsewhere)
    policy = {
        **CONFIGMAP,
        "metadata": {
            **CONFIGMAP["metadata"],
            "name": "selinux-keep",
            "labels": {"spo.x-k8s.io/profile-kind": "SelinuxProfile"},
            "ownerReferences": [owner_reference("SelinuxProfile", "keep")],
        },
        "data": {"policy.cil": "(block keep_team-a)\n"},
    }
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy))
    argv = [
        *_argv(folder, tmp_path / "root"),
        "--selinux-dir",
        str(drop),
        "--selinux-installer",
        "batch",
        "--semodule-root",
        str(tmp_path / "store"),
    ]
    capsys.readouterr()
    assert command.main(argv) == 1
    out, err = capsys.readouterr()
    [error] = json.loads(out.strip().splitlines()[-1])["errors"]
    assert error["reason"] == "CannotSaveSelinuxPolicy"
    assert error["message"] == (
        f"{drop} is a symbolic link to {elsewhere}: nodesync does not write through symbolic links"
    )
    assert error["message"] in err
    assert sorted(p.name for p in elsewhere.iterdir()) == [
        "old_ns.cil"
    ]  # nothing written or removed
