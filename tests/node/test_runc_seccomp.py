"""Proof with the real runtime: the files nodesync writes, given to runc as a Localhost profile.

Each test installs ConfigMaps with the real ``nodesync --from-dir --once``, then
reads the written file back exactly as a runtime does for ``type: Localhost``
(``<kubelet dir>/seccomp/operator/<ns>/<name>.json``, parsed into the OCI
``linux.seccomp``) and runs a busybox container with ``runc run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller
from tests.helpers.nodesync_once import NAMESPACE, Installer
from tests.helpers.runc_bundle import Bundle, localhost_seccomp

pytestmark = pytest.mark.node

BASE_PROFILE = Path(__file__).parents[2] / "examples/base-profiles/runc-v1.1.5.yaml"
# What `/bin/echo hi` (busybox) calls after its execve, recorded with
# `python -m tests.helpers.runc_recording workload --runs 5 -- /bin/echo hi` (see that module).
ECHO_SYSCALLS = [
    "arch_prctl",
    "brk",
    "exit_group",
    "getrandom",
    "getuid",
    "mprotect",
    "prctl",
    "prlimit64",
    "readlink",
    "rseq",
    "set_robust_list",
    "set_tid_address",
    "write",
]


def profile(default: str, *rules: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"]}
    if rules:
        body["syscalls"] = list(rules)
    return body


def installed(installer: Installer, name: str, body: dict[str, Any]) -> dict[str, Any]:
    summary = installer.install({name: body})
    assert summary["errors"] == [] and summary["written"] == 1
    return localhost_seccomp(installer.kubelet_dir, f"operator/{NAMESPACE}/{name}.json")


def test_block_all_profile_stops_the_container_from_starting(
    installer: Installer, bundle: Bundle
) -> None:
    seccomp = installed(installer, "block-all", profile("SCMP_ACT_ERRNO"))
    run = bundle.run(["/bin/echo", "started"], seccomp)
    assert run.returncode != 0
    assert "started" not in run.stdout
    assert (
        bundle.run(["/bin/echo", "started"], None).stdout == "started\n"
    )  # the bundle itself is fine


def test_errno_for_mkdir_denies_mkdir_only(installer: Installer, bundle: Bundle) -> None:
    deny = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    seccomp = installed(installer, "deny-mkdir", profile("SCMP_ACT_ALLOW", deny))
    run = bundle.run(
        ["/bin/sh", "-c", "mkdir /tmp/x; echo mkdir=$?; echo hello; ls -d /bin"], seccomp
    )
    assert "Operation not permitted" in run.stderr
    assert "mkdir=1" in run.stdout
    assert "hello" in run.stdout and "/bin" in run.stdout
    assert run.returncode == 0


@pytest.mark.parametrize("action", ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"])
def test_allow_and_complain_profiles_let_the_workload_run(
    installer: Installer, bundle: Bundle, action: str
) -> None:
    seccomp = installed(installer, action.lower().replace("_", "-"), profile(action))
    run = bundle.run(["/bin/sh", "-c", "mkdir /tmp/x && echo made"], seccomp)
    assert (run.returncode, run.stdout) == (0, "made\n"), run.stderr


def base_syscalls() -> list[str]:
    spec = yaml.safe_load(BASE_PROFILE.read_text())["spec"]
    assert spec["defaultAction"] == "SCMP_ACT_ERRNO"
    return [
        name
        for rule in spec["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    ]


def test_profile_on_a_base_profile_runs_only_with_the_base_merged(
    installer: Installer, bundle: Bundle
) -> None:
    own = {"names": ECHO_SYSCALLS, "action": "SCMP_ACT_ALLOW"}
    alone = installed(installer, "echo-alone", profile("SCMP_ACT_ERRNO", own))
    run = bundle.run(["/bin/echo", "hi"], alone)
    assert run.returncode != 0 and "hi" not in run.stdout

    # the hook's job, done here by hand: union the base profile's syscalls into the profile
    merged_names = sorted(set(ECHO_SYSCALLS) | set(base_syscalls()))
    merged = installed(
        installer,
        "echo-merged",
        profile("SCMP_ACT_ERRNO", {"names": merged_names, "action": "SCMP_ACT_ALLOW"}),
    )
    run = bundle.run(["/bin/echo", "hi"], merged)
    assert (run.returncode, run.stdout) == (0, "hi\n"), run.stderr


def test_base_profile_is_what_runc_needs_to_start_a_container(
    installer: Installer, bundle: Bundle
) -> None:
    """/bin/exit0 is a 132-byte program whose only syscall is exit_group."""

    def allow(names: list[str]) -> dict[str, Any]:
        return profile("SCMP_ACT_ERRNO", {"names": names, "action": "SCMP_ACT_ALLOW"})

    with_exit = installed(installer, "base-and-exit", allow([*base_syscalls(), "exit_group"]))
    assert bundle.run(["/bin/exit0"], with_exit).returncode == 0

    exit_only = installed(installer, "exit-only", allow(["exit_group"]))
    run = bundle.run(["/bin/exit0"], exit_only)
    assert run.returncode == 1 and "runc run failed" in run.stderr  # runc cannot start it

    base_only = installed(installer, "base-only", allow(base_syscalls()))
    run = bundle.run(["/bin/exit0"], base_only)
    # runc started the workload; its exit_group was denied, it ran off its end: SIGSEGV
    assert run.returncode == 128 + 11 and run.stderr == ""


def test_syscalls_of_other_architectures_are_left_out_by_runc(
    installer: Installer, bundle: Bundle
) -> None:
    """The Go operator's example refuses ``vm86`` and others in an x86_64-only profile. The hook
    accepts it with a warning and writes the names as given; runc (through libseccomp) leaves
    them out of the x86_64 filter and runs the container, under the rest of the rule."""
    others = ["stime", "umount", "vm86old", "vm86"]
    spec = profile(
        "SCMP_ACT_ALLOW",  # not the example's SCMP_ACT_LOG: the audit log is not ours to fill
        {"names": ["mkdir", "mkdirat", *others], "action": "SCMP_ACT_ERRNO"},
    )
    parent = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "other-arches", "namespace": NAMESPACE, "uid": "uid-1"},
        "spec": spec,
    }
    answer = controller.sync(SyncRequest.model_validate({"parent": parent}), "2026-01-01T00:00:00Z")
    assert answer.status and "warning" in answer.status["conditions"][0]["message"]
    written = json.loads(answer.children[0]["data"]["profile.json"])
    assert written == spec
    seccomp = installed(installer, "other-arches", written)
    run = bundle.run(["/bin/sh", "-c", "mkdir /tmp/x; echo mkdir=$?; echo ran"], seccomp)
    assert run.returncode == 0, run.stderr
    assert "mkdir=1" in run.stdout and "ran" in run.stdout
    assert "Operation not permitted" in run.stderr
