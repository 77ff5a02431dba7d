"""The local mode never converges on a partial view of its folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from nodesync.command import nodesync as command

CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "seccomp-keep",
        "namespace": "team-a",
        "labels": {"spo.x-k8s.io/profile-kind": "SeccompProfile"},
        "annotations": {"spo.x-k8s.io/profile-name": "keep"},
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
