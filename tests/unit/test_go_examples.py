"""The Go operator's v0.8.4 examples (tests/helpers/go_examples.py), offline: our CRD schemas
and models take them, ``spo render`` installs their profiles, and the other controllers'
hooks accept the rest. tests/e2e/test_go_examples_e2e.py takes them through the API server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hooks.api.crdgen import all_kinds
from hooks.cluster.binding import controller as binding
from hooks.cluster.contract import SyncRequest
from hooks.cluster.recording import controller as recording
from hooks.cluster.seccomp import controller as seccomp
from hooks.cluster.spod import controller as spod
from hooks.command import cli, crdfiles
from tests.helpers.go_examples import (
    ALLOWED_SYSCALLS_SPOD,
    EXAMPLES,
    HIGH_RISK,
    HIGH_RISK_OTHER_ARCHES,
    Example,
)

ROOT = Path(__file__).parent.parent.parent
NOW = "2026-01-01T00:00:00Z"
KINDS = {kind.kind: kind for kind in all_kinds()}
BY_FILE = {example.file: example for example in EXAMPLES}
OBJECTS = [(f"{e.id}#{n}", obj) for e in EXAMPLES for n, obj in enumerate(e.objects)]
PROFILES = [e for e in EXAMPLES if e.expected]


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for name in crdfiles.files():
        crd = yaml.safe_load((ROOT / "crds" / name).read_text())
        for version in crd["spec"]["versions"]:
            key = (crd["spec"]["names"]["kind"], f"{crd['spec']['group']}/{version['name']}")
            found[key] = version["schema"]["openAPIV3Schema"]
    return found


SCHEMAS = _schemas()


def test_every_example_file_but_apparmor_is_here() -> None:
    assert sorted(BY_FILE) == [
        "baseprofile-crun.yaml",
        "baseprofile-runc.yaml",
        "config.yaml",
        "profilebinding.yaml",
        "profilerecording-seccomp-bpf-specific-container.yaml",
        "profilerecording-seccomp-bpf.yaml",
        "profilerecording-seccomp-logs.yaml",
        "profilerecording-seccomp-specific-container-logs.yaml",
        "profilerecording-selinux-logs.yaml",
        "rawselinuxprofile.yaml",
        "seccompprofile-allowed-syscalls-change.yaml",
        "seccompprofile-allowed-syscalls-validation.yaml",
        "seccompprofile.yaml",
        "selinuxprofile.yaml",
    ]


@pytest.mark.parametrize(("where", "obj"), OBJECTS, ids=[where for where, _ in OBJECTS])
def test_every_object_fits_its_crd_and_model(where: str, obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, SCHEMAS[(obj["kind"], obj["apiVersion"])])
    KINDS[obj["kind"]].model.model_validate(obj)


def _render(tmp_path: Path, *objects: dict[str, Any]) -> int:
    """``spo render`` of ``objects`` into ``tmp_path/out``; its exit code."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "example.yaml").write_text(yaml.safe_dump_all(list(objects), sort_keys=False))
    return cli.main(["render", str(source), "--out", str(tmp_path / "out")])


def _rows(printed: str) -> dict[str, tuple[str, str]]:
    """The rendered rows: name -> (status, message)."""
    rows = {}
    for line in printed.splitlines()[1:]:
        if line.startswith("skipped: "):
            continue
        _, name, _, state, _, message = [*line.split(maxsplit=5), ""][:6]
        rows[name] = (state, message)
    return rows


@pytest.mark.parametrize("example", PROFILES, ids=lambda e: e.id)
def test_spo_render_installs_every_profile_as_given(
    example: Example, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _render(tmp_path, *example.objects)
    rows = _rows(capsys.readouterr().out)
    assert code == 0
    assert {name: state for name, (state, _) in rows.items()} == example.expected
    for obj in example.objects:
        if obj["kind"] != "SeccompProfile":
            continue
        written = (
            tmp_path
            / "out"
            / "seccomp"
            / "operator"
            / "default"
            / f"{obj['metadata']['name']}.json"
        )
        assert json.loads(written.read_text()) == obj["spec"]


def test_spo_render_warns_of_the_high_risk_syscalls_of_other_architectures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _render(tmp_path, *BY_FILE["seccompprofile.yaml"].objects)
    rows = _rows(capsys.readouterr().out)
    assert code == 0
    state, message = rows["profile-complain-block-high-risk"]
    assert state == "Installed"
    assert message == (
        "installed on every node that reported; warning: spec.syscalls[1].names: no such "
        "syscalls on SCMP_ARCH_X86_64 (other architectures have them; the runtime leaves them "
        f"out of the filter there): {', '.join(HIGH_RISK_OTHER_ARCHES)}"
    )
    assert all("warning" not in m for name, (_, m) in rows.items() if "high-risk" not in name)
    written = tmp_path / "out/seccomp/operator/default/profile-complain-block-high-risk.json"
    assert json.loads(written.read_text())["syscalls"][1]["names"] == HIGH_RISK


def test_the_allowed_syscalls_examples_meet_the_spod_they_were_written_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In the Go project these examples test a spod's allowedSyscalls; so do they here."""
    example = BY_FILE["seccompprofile-allowed-syscalls-validation.yaml"]
    code = _render(tmp_path, ALLOWED_SYSCALLS_SPOD, *example.objects)
    rows = _rows(capsys.readouterr().out)
    assert code == 1  # some profiles break the policy
    assert {name: state for name, (state, _) in rows.items()} == {
        "profile-allowed-syscalls": "Installed",
        "profile-denied-syscalls": "Error",
        "profile-allow-all-syscalls": "Error",
        "profile-block-all-syscalls": "Installed",
    }
    assert "bpf" in rows["profile-denied-syscalls"][1]


@pytest.mark.parametrize("file", ["selinuxprofile.yaml", "rawselinuxprofile.yaml"])
def test_spo_render_hands_the_selinux_examples_to_selinuxd_once_selinux_is_on(
    file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enabled = {**ALLOWED_SYSCALLS_SPOD, "spec": {"enableSelinux": True}}
    code = _render(tmp_path, enabled, *BY_FILE[file].objects)
    rows = _rows(capsys.readouterr().out)
    assert code == 0
    assert rows["errorlogger"][0] == "Pending"  # nothing installs a policy offline
    cil = (tmp_path / "out" / "selinux.d" / "errorlogger_default.cil").read_text()
    assert "(block errorlogger_default" in cil and "var_log_t" in cil


def _request(parent: dict[str, Any], related: dict[str, Any] | None = None) -> SyncRequest:
    meta = parent["metadata"]
    placed = {**parent, "metadata": {"namespace": "default", "uid": "uid-1", **meta}}
    return SyncRequest.model_validate({"parent": placed, "related": related or {}})


def _installed(name: str, namespace: str, default: str) -> dict[str, Any]:
    """A SeccompProfile as the hooks see it once every node installed it."""
    return {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"defaultAction": default},
        "status": {"status": "Installed", "localhostProfile": f"operator/{namespace}/{name}.json"},
    }


def test_the_binding_example_binds_once_its_profile_is_installed() -> None:
    (obj,) = BY_FILE["profilebinding.yaml"].objects
    profile = _installed("profile-allow-unsafe", "default", "SCMP_ACT_ALLOW")
    related = {binding.SECCOMP_PROFILES: {"default/profile-allow-unsafe": profile}}
    ready = binding.sync(_request(obj, related), NOW).to_wire()["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("True", "Bound"), ready


RECORDINGS = [e for e in EXAMPLES if e.objects[0]["kind"] == "ProfileRecording"]


@pytest.mark.parametrize("example", RECORDINGS, ids=lambda e: e.id)
def test_the_recording_examples_record_with_logs_and_say_bpf_is_not_here(
    example: Example,
) -> None:
    (obj,) = example.objects
    logging = _installed("log-enricher-trace", "security-profiles-operator", "SCMP_ACT_LOG")
    related = {seccomp.SECCOMP_PROFILES: {"security-profiles-operator/log-enricher-trace": logging}}
    answer = recording.sync(_request(obj, related), NOW).to_wire()
    ready = answer["status"]["conditions"][0]
    expected = "RecorderNotSupported" if obj["spec"]["recorder"] == "bpf" else "Recording"
    assert ready["reason"] == expected, ready


def test_the_spod_example_is_a_valid_spod() -> None:
    (obj,) = BY_FILE["config.yaml"].objects
    answer = spod.sync(_request(obj), NOW).to_wire()
    assert answer["status"]["state"] != "ERROR", answer["status"]
    assert [child["metadata"]["name"] for child in answer["children"]] == ["spod"]
