"""`spo render`: the hooks and the node materialiser, offline, on the examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hooks.command import cli

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = ROOT / "examples"


def test_render_examples_writes_what_a_node_gets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["render", str(EXAMPLES), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    profiles = [
        doc
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "SeccompProfile"
    ]
    assert profiles
    selinux = [line for line in printed.splitlines() if "SelinuxProfile" in line]
    assert selinux and all("Pending" in line and "SELinux is disabled" in line for line in selinux)
    for profile in profiles:
        namespace, name = profile["metadata"]["namespace"], profile["metadata"]["name"]
        written = tmp_path / "seccomp" / "operator" / namespace / f"{name}.json"
        content = json.loads(written.read_text())
        assert content["defaultAction"] == profile["spec"]["defaultAction"]
        assert "baseProfileName" not in content and "disabled" not in content
        row = next(line for line in printed.splitlines() if f" {name} " in line)
        assert "Installed" in row
        assert f"operator/{namespace}/{name}.json" in row


def test_render_reports_an_invalid_profile_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "bad.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                "kind": "SeccompProfile",
                "metadata": {"name": "bad", "namespace": "team-a"},
                "spec": {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["mkdirr"], "action": "SCMP_ACT_ALLOW"}],
                },
            }
        )
        + "---\n"
        + yaml.safe_dump(
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
                "kind": "SeccompProfile",
                "metadata": {"name": "good"},
                "spec": {"defaultAction": "SCMP_ACT_LOG"},
            }
        )
    )
    out = tmp_path / "out"
    assert cli.main(["render", str(source), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "unknown syscalls for any architecture: mkdirr" in printed
    assert not (out / "seccomp" / "operator" / "team-a" / "bad.json").exists()
    assert json.loads((out / "seccomp" / "operator" / "default" / "good.json").read_text()) == {
        "defaultAction": "SCMP_ACT_LOG"
    }


def test_render_missing_path_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["render", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_render_broken_yaml_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    assert cli.main(["render", str(tmp_path / "broken.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "spo render:" in capsys.readouterr().err


def test_render_applies_the_operator_policy_from_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "spod.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
                "kind": "SecurityProfilesOperatorDaemon",
                "metadata": {"name": "spod", "namespace": "security-profiles-operator"},
                "spec": {"allowedSyscalls": ["read", "write", "exit_group"]},
            }
        )
    )
    for name, names in (("ok", ["read", "write"]), ("greedy", ["read", "ptrace"])):
        (source / f"{name}.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                    "kind": "SeccompProfile",
                    "metadata": {"name": name, "namespace": "team-a"},
                    "spec": {
                        "defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
                    },
                }
            )
        )
    out = tmp_path / "out"
    assert cli.main(["render", str(source), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "not in the operator's allowedSyscalls: ptrace" in printed
    assert (out / "seccomp" / "operator" / "team-a" / "ok.json").exists()
    assert not (out / "seccomp" / "operator" / "team-a" / "greedy.json").exists()


def test_render_hands_selinux_policies_to_the_drop_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    daemon = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
        "kind": "SecurityProfilesOperatorDaemon",
        "metadata": {"name": "spod", "namespace": "security-profiles-operator"},
        "spec": {"enableSelinux": True},
    }
    good = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha2",
        "kind": "SelinuxProfile",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"allow": {"http_port_t": {"tcp_socket": ["name_bind"]}}},
    }
    bad = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha2",
        "kind": "RawSelinuxProfile",
        "metadata": {"name": "escape", "namespace": "team-a"},
        "spec": {"policy": "(allow process http_port_t (tcp_socket (name_bind))))\n(block evil)"},
    }
    (source / "all.yaml").write_text(yaml.safe_dump_all([daemon, good, bad]))
    out = tmp_path / "out"
    assert cli.main(["render", str(source), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    web = next(line for line in printed.splitlines() if " web " in line)
    assert "Pending" in web and "web_team-a.process" in web
    cil = (out / "selinux.d" / "web_team-a.cil").read_text()
    assert (
        cil.startswith("(block web_team-a\n")
        and "(allow process http_port_t ( tcp_socket ( name_bind )))" in cil
    )
    assert "Error" in next(line for line in printed.splitlines() if " escape " in line)
    assert not (out / "selinux.d" / "escape_team-a.cil").exists()
