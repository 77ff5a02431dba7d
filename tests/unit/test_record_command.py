"""The command layer of ``spo record`` / ``spo run``: names, bases, files; no process is traced
here."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import yaml

from hooks.api import syscalls
from hooks.api.seccompprofile import Action, Arg, Operator, SeccompProfileSpec
from hooks.command import cli, record
from nodesync.tracing import filters
from nodesync.tracing.kernel import Notification
from nodesync.tracing.recording import Recorded
from nodesync.tracing.supervising import Exit

ROOT = Path(__file__).parent.parent.parent
RUNC_BASE = ROOT / "examples" / "base-profiles" / "runc-v1.1.5.yaml"
X86_64 = 0xC000003E


def spec(**fields: object) -> SeccompProfileSpec:
    return SeccompProfileSpec.model_validate({"defaultAction": "SCMP_ACT_ERRNO", **fields})


def nr(name: str) -> int:
    number = syscalls.number_of("SCMP_ARCH_X86_64", name)
    assert number is not None
    return number


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["sh", "-c", "x"], "sh"),
        (["/usr/bin/Python3.11"], "python3.11"),
        (["./my_server"], "my-server"),
        (["___"], "recorded"),
    ],
)
def test_profile_name_is_a_valid_object_name_from_the_command(argv: list[str], name: str) -> None:
    assert record.profile_name(argv) == name


def test_recorded_profile_denies_by_default_and_allows_the_sorted_names() -> None:
    profile = record.recorded_profile(
        ["write", "mkdir", "write", "execve"], ["SCMP_ARCH_X86_64"], "app", "default", None
    )
    assert profile.to_wire() == {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["execve", "mkdir", "write"], "action": "SCMP_ACT_ALLOW"}],
        },
    }


def test_a_base_names_itself_and_what_it_lets_through_is_left_out() -> None:
    base = spec(
        syscalls=[
            {"names": ["write", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["openat"], "action": "SCMP_ACT_LOG"},
            {
                "names": ["mkdir"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
        ]
    )
    profile = record.recorded_profile(
        ["write", "read", "openat", "mkdir", "execve"],
        ["SCMP_ARCH_X86_64"],
        "app",
        None,
        ("base", base),
    )
    assert profile.spec.baseProfileName == "base"
    assert profile.metadata.namespace is None
    assert profile.spec.syscalls is not None
    assert profile.spec.syscalls[0].names == ["execve", "mkdir"]  # mkdir: only with an argument


def test_a_base_that_allows_everything_leaves_no_rule() -> None:
    profile = record.recorded_profile(
        ["write"], ["SCMP_ARCH_X86_64"], "app", None, ("base", spec(defaultAction="SCMP_ACT_ALLOW"))
    )
    assert profile.spec.syscalls is None


def test_the_command_after_the_double_dash_keeps_its_own_options() -> None:
    args = cli.parser().parse_args(["record", "-o", "f.yaml", "--", "sh", "-c", "ls -l", "--", "x"])
    assert args.argv == ["sh", "-c", "ls -l", "--", "x"]
    assert args.output == "f.yaml"
    assert args.format == "crd"


def fake_recording(monkeypatch: pytest.MonkeyPatch, names: list[str], code: int = 0) -> None:
    calls = frozenset((X86_64, nr(name)) for name in names)
    monkeypatch.setattr(
        record.recording, "record", lambda argv, **kw: Recorded(calls, 2, 1, Exit(code, None))
    )


def test_record_writes_the_profile_and_passes_the_exit_code_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_recording(monkeypatch, ["mkdir", "execve"], code=3)
    out = tmp_path / "p.yaml"
    assert cli.main(["record", "-o", str(out), "--name", "mine", "--", "true"]) == 3
    written = yaml.safe_load(out.read_text())
    assert written["metadata"] == {"name": "mine"}
    assert written["spec"]["syscalls"] == [
        {"names": ["execve", "mkdir"], "action": "SCMP_ACT_ALLOW"}
    ]
    assert written["spec"]["architectures"] == [syscalls.native_arch()]
    said = capsys.readouterr().err
    assert "2 syscalls from 1 processes (2 threads)" in said
    assert "exited with code 3" in said


def test_record_on_a_base_by_name_and_the_runtime_json_has_the_base_merged_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_recording(monkeypatch, ["mkdir", "execve", "write"])
    crd = tmp_path / "crd.yaml"
    assert (
        cli.main(
            [
                "record",
                "-o",
                str(crd),
                "--base",
                "runc-v1.1.5",
                "--base-dir",
                str(RUNC_BASE.parent),
                "--",
                "true",
            ]
        )
        == 0
    )
    written = yaml.safe_load(crd.read_text())
    assert written["spec"]["baseProfileName"] == "runc-v1.1.5"
    assert written["spec"]["syscalls"][0]["names"] == ["mkdir"]  # runc's base has execve and write

    runtime = tmp_path / "runtime.json"
    assert (
        cli.main(
            [
                "record",
                "-o",
                str(runtime),
                "--format",
                "oci",
                "--base",
                str(RUNC_BASE),
                "--",
                "true",
            ]
        )
        == 0
    )
    document = json.loads(runtime.read_text())
    assert "baseProfileName" not in document
    allowed = {
        name
        for rule in document["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }
    assert {"mkdir", "execve", "write", "fstatfs"} <= allowed


def test_a_base_that_cannot_be_found_is_an_error_naming_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["record", "--base", "nope", "--base-dir", str(tmp_path), "--", "true"]) == 2
    assert f"no SeccompProfile named 'nope' in the files of {tmp_path}" in capsys.readouterr().err


def test_run_merges_a_manifest_with_its_base_found_beside_it(tmp_path: Path) -> None:
    (tmp_path / "runc.yaml").write_text(RUNC_BASE.read_text())
    (tmp_path / "app.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                "kind": "SeccompProfile",
                "metadata": {"name": "app", "namespace": "security-profiles-operator"},
                "spec": {
                    "baseProfileName": "runc-v1.1.5",
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}],
                },
            }
        )
    )
    merged, default_errno, described = record.runnable(tmp_path / "app.yaml", None)
    assert default_errno is None
    assert described == "SeccompProfile app (with runc-v1.1.5)"
    assert merged.baseProfileName is None
    assert {"mkdir", "fstatfs", "execve"} <= record.let_through(merged)


def test_run_names_the_missing_base_and_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\n"
        "metadata: {name: app}\nspec: {baseProfileName: gone, defaultAction: SCMP_ACT_ERRNO}\n"
    )
    with pytest.raises(record.Failure, match=f"'gone' not found .* looked up in {tmp_path}"):
        record.runnable(tmp_path / "app.yaml", None)


def test_run_reads_a_runtime_json_with_its_default_errno(tmp_path: Path) -> None:
    path = tmp_path / "runtime.json"
    path.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
            }
        )
    )
    merged, default_errno, _ = record.runnable(path, None)
    assert default_errno == 38
    assert record.let_through(merged) == {"read"}


def test_run_refuses_a_file_that_is_no_profile(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: ConfigMap\napiVersion: v1\n")
    with pytest.raises(record.Failure, match="expected one SeccompProfile, found 0"):
        record.runnable(path, None)


def refused(compiled: filters.CompiledProfile, name: str, *args: int) -> int:
    values = (*args, 0, 0, 0, 0, 0, 0)[:6]
    return compiled.errno_for(Notification(1, 1, nr(name), X86_64, values))


def test_the_errno_of_a_refusal_is_the_profiles() -> None:
    compiled = filters.CompiledProfile(b"", 0, errno.EPERM)
    profile = spec(
        syscalls=[
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"},
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EAFNOSUPPORT,
                "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EINVAL,
                "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 0xFF, "valueTwo": 9, "op": "SCMP_CMP_MASKED_EQ"},
                ],
            },
        ]
    )
    for rule in profile.syscalls or []:
        args = tuple(rule.args or ())
        for name in rule.names:
            error = rule.errnoRet if rule.action is Action.ERRNO else errno.ENOSYS
            compiled.refusals.setdefault(name, []).append(
                filters._Refusal(args, error or errno.EPERM)
            )
    assert refused(compiled, "mkdir") == errno.EACCES
    assert refused(compiled, "ptrace") == errno.ENOSYS
    assert refused(compiled, "socket", 16) == errno.EAFNOSUPPORT
    assert refused(compiled, "socket", 2) == errno.EPERM  # the condition fails: the default's
    assert refused(compiled, "personality", 8) == errno.EINVAL  # one index twice: either matches
    assert refused(compiled, "personality", 0x109) == errno.EINVAL
    assert refused(compiled, "personality", 7) == errno.EPERM
    assert refused(compiled, "getpid") == errno.EPERM


def test_argument_conditions_on_distinct_indexes_must_all_hold() -> None:
    rule = filters._Refusal(
        (Arg(index=0, value=1, op=Operator.EQ), Arg(index=1, value=5, op=Operator.GT)), errno.EPERM
    )
    assert rule.applies((1, 6, 0, 0, 0, 0))
    assert not rule.applies((1, 5, 0, 0, 0, 0))
    assert not rule.applies((2, 6, 0, 0, 0, 0))


def test_the_profile_goes_through_a_pipe_or_a_link_and_never_replaces_them(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    record._write("through the pipe\n", str(fifo))
    reader.join(timeout=10)
    assert received == ["through the pipe\n"]
    assert fifo.is_fifo()

    target = tmp_path / "target.yaml"
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    record._write("through the link\n", str(link))
    assert link.is_symlink() and target.read_text() == "through the link\n"

    plain = tmp_path / "plain.yaml"
    record._write("one\n", str(plain))
    record._write("two\n", str(plain))
    assert plain.read_text() == "two\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "fifo",
        "link.yaml",
        "plain.yaml",
        "target.yaml",
    ]
