"""Nothing recorded is lost when the log enricher crashes, end to end.

The real components as in test_recording_e2e (API server, recording webhook over HTTPS,
auditd, runc with busybox); ``spo log-enricher`` runs with ``--state-dir`` and is killed with
SIGKILL (no handler runs, nothing is saved on the way out) in the middle of a recording:

- the container goes on while no enricher runs: the first half of its workload was read
  before the crash (its records lie before the position saved in the state dir, so the new
  enricher never reads them again: they can only reach the profile from the saved state),
  the second half (other syscalls) runs while the enricher is down (they can only come from
  the audit log, resumed at the saved position); the new enricher makes the profile when
  the pod Succeeds, and it has both halves;
- the pod is deleted while the enricher is down: the new one knows it was recorded (the
  state dir keeps the recorded pods not finished yet) and still makes its profile.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks.api import syscalls
from nodesync.command.logenricher import STATE_FILE
from tests.helpers.auditd import AUDIT_LOG, auditd_running
from tests.helpers.controlplane import ControlPlane
from tests.helpers.nodesync_process import eventually
from tests.helpers.recording_env import (
    CONTAINER,
    DEADLINE,
    SLEEPS,
    LogEnricher,
    RecordedContainer,
    allowed,
    enricher_kubeconfig,
    profile_of,
    recorded_pod,
    recording,
    recording_webhook,
    started,
    until,
)
from tests.helpers.runc_bundle import Bundle, find_busybox, find_runc
from tests.helpers.webhook_server import WebhookServer

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NS = "record-restart-e2e"
X86_64 = 0xC000003E  # the audit arch of the records (the workloads' syscall numbers are x86-64's)
# sh builtins: the first half reads (read) and asks for its times (times), then sleeps long
# enough for the crash; the second half uses syscalls the first never makes (chdir, umask,
# kill), leaves a file the test sees from the host, then sleeps long enough for the new
# enricher to read its records while its processes still exist.
FIRST = 'echo first > /tmp/out; read line < /tmp/out; echo "$line"; times > /dev/null; sleep 4'
SECOND = "cd /tmp && umask 077 && kill -0 $$ && echo second > /tmp/second-half; sleep 5"
FIRST_ONLY = {"read", "times"}
SECOND_ONLY = {"chdir", "umask", "kill"}


@pytest.fixture(scope="module")
def webhook(
    installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    recordings = [recording(NS, "resumed", "resumed"), recording(NS, "gone", "gone")]
    with recording_webhook(
        installed, tmp_path_factory.mktemp("record-restart-webhook"), NS, recordings
    ) as server:
        yield server


def saved(state_dir: Path) -> dict[str, Any]:
    """The enricher's state file as it is now."""
    path = state_dir / STATE_FILE
    assert path.exists(), f"no state saved in {state_dir} yet"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def saved_syscalls(state_dir: Path, container_id: str) -> set[str]:
    """The names of the syscalls the state file holds for the container."""
    pairs = (saved(state_dir).get("recorded") or {}).get("seccomp", {}).get(container_id) or []
    return {syscalls.name_of(arch, number) or f"syscall-{number}" for arch, number in pairs}


def holds(state_dir: Path, container_id: str, names: set[str]) -> None:
    have = saved_syscalls(state_dir, container_id)
    assert names <= have, f"the saved state lacks {sorted(names - have)} (it holds {sorted(have)})"


def serial_of(line: dict[str, Any]) -> int:
    """The audit serial of an enriched line (``timestamp`` is ``SECONDS.MILLIS:SERIAL``)."""
    return int(str(line["timestamp"]).rsplit(":", 1)[1])


def seccomp_records(data: bytes) -> list[tuple[int, int]]:
    """(serial, x86-64 syscall number) of every SECCOMP record in ``data``, raw audit log text."""
    pattern = re.compile(
        rb"^type=SECCOMP msg=audit\(\d+\.\d+:(\d+)\):.* arch=c000003e syscall=(\d+) ", re.MULTILINE
    )
    return [(int(serial), int(number)) for serial, number in pattern.findall(data)]


def log_file_of(inode: int) -> Path:
    """The audit log file (current or rotated) with that inode."""
    for path in sorted(AUDIT_LOG.parent.glob(AUDIT_LOG.name + "*")):
        if path.stat().st_ino == inode:
            return path
    raise AssertionError(f"no audit log file has the saved inode {inode}")


def restored(agent: LogEnricher) -> None:
    lines = [
        r for r in agent.records() if str(r.get("msg", "")).startswith("restored the recording of")
    ]
    assert lines, "the new enricher did not say it restored a recording"


def test_a_crash_in_the_middle_of_a_recording_loses_nothing(
    installed: ControlPlane, webhook: WebhookServer, tmp_path: Path
) -> None:
    plane = installed
    state = tmp_path / "state"
    kubelet = tmp_path / "kubelet"
    kubeconfig = enricher_kubeconfig(plane)
    bundle = Bundle(tmp_path / "bundle", find_runc(), find_busybox())
    marker = bundle.path / "rootfs" / "tmp" / "second-half"
    times = syscalls.number_of("SCMP_ARCH_X86_64", "times")
    with auditd_running():
        first = started(
            LogEnricher(kubeconfig, kubelet, tmp_path / "first.log", ["--state-dir", str(state)])
        )
        second: LogEnricher | None = None
        try:
            pod = RecordedContainer(
                plane, NS, recorded_pod("resumed-1", "resumed"), bundle, kubelet
            )
            pod.start(["/bin/sh", "-c", f"{FIRST}; {SECOND}"])

            # the first half is read, and saved
            def first_half_saved() -> None:
                told = first.syscalls(pod.name)
                assert FIRST_ONLY | {"execve"} <= told and told & SLEEPS, (
                    f"told so far: {sorted(told)}"
                )
                holds(state, pod.container_id, FIRST_ONLY | (told & SLEEPS))

            eventually(
                "the first half is read and saved", first_half_saved, first, timeout=DEADLINE
            )
            assert not marker.exists(), (
                "the second half ran before the crash: the first sleep is too short"
            )
            first.crash()
            at_crash = saved(state)
            told_first = first.syscalls(pod.name)
            assert not told_first & SECOND_ONLY, (
                f"the first enricher saw the second half: {sorted(told_first & SECOND_ONLY)}"
            )

            # the second half runs while no enricher does
            def second_half_ran() -> None:
                assert marker.exists(), "the second half has not run yet"

            until("the second half runs while the enricher is down", second_half_ran)
            assert pod.running(), (
                "the container is over before the new enricher starts: the last sleep is too short"
            )
            second = started(
                LogEnricher(
                    kubeconfig, kubelet, tmp_path / "second.log", ["--state-dir", str(state)]
                )
            )
            eventually(
                "the new enricher restores the saved recording", lambda: restored(second), second
            )
            run = pod.wait()
            assert (run.returncode, run.stdout) == (0, "first\n"), run

            pod.succeeded()
            profile = eventually(
                "the recorded profile exists",
                lambda: profile_of(plane, NS, f"resumed-{CONTAINER}"),
                second,
                timeout=DEADLINE,
            )
        finally:
            first.stop(30)
            if second is not None:
                second.stop(30)

    names = set(allowed(profile))
    assert names >= SECOND_ONLY, (
        "the records written while the enricher was down are missing: "
        f"{sorted(SECOND_ONLY - names)}"
    )
    assert told_first <= names, (
        f"what the first enricher saw is missing: {sorted(told_first - names)}"
    )
    assert "mkdir" not in names and "mkdirat" not in names

    # the first half's `times` reached the profile only from the saved state: its record lies
    # before the saved position, and no record of that syscall comes after it
    [position] = at_crash["files"]  # no rotation in this test: one file, the current log
    data = log_file_of(position["inode"]).read_bytes()
    told_times = {
        serial_of(line) for line in first.audit_lines(pod.name) if line["syscallName"] == "times"
    }
    before = {serial for serial, _ in seccomp_records(data[: position["offset"]])}
    assert told_times and told_times <= before, (
        "the record of `times` is not before the saved position"
    )
    after = seccomp_records(data[position["offset"] :])
    if log_file_of(AUDIT_LOG.stat().st_ino) != log_file_of(
        position["inode"]
    ):  # auditd rotated by size meanwhile
        after += seccomp_records(AUDIT_LOG.read_bytes())
    assert times not in {number for _, number in after}, (
        "a record of `times` follows the saved position"
    )


def test_a_pod_deleted_while_the_enricher_is_down_still_gets_its_profile(
    installed: ControlPlane, webhook: WebhookServer, tmp_path: Path
) -> None:
    plane = installed
    state = tmp_path / "state"
    kubelet = tmp_path / "kubelet"
    kubeconfig = enricher_kubeconfig(plane)
    bundle = Bundle(tmp_path / "bundle", find_runc(), find_busybox())
    recorded = {"chdir", "umask", "times"}
    with auditd_running():
        first = started(
            LogEnricher(kubeconfig, kubelet, tmp_path / "first.log", ["--state-dir", str(state)])
        )
        second: LogEnricher | None = None
        try:
            pod = RecordedContainer(plane, NS, recorded_pod("gone-1", "gone"), bundle, kubelet)
            pod.start(["/bin/sh", "-c", "cd /tmp && umask 077 && times > /dev/null; sleep 2"])

            def read_and_saved() -> None:
                told = first.syscalls(pod.name)
                assert recorded <= told and told & SLEEPS, f"told so far: {sorted(told)}"
                holds(state, pod.container_id, recorded | (told & SLEEPS))
                pods = [
                    (p.get("metadata") or {}).get("name") for p in saved(state).get("pods") or []
                ]
                assert pod.name in pods, f"the saved state knows the pods {pods}"

            eventually(
                "the container's records and its pod are saved",
                read_and_saved,
                first,
                timeout=DEADLINE,
            )
            first.crash()
            told_first = first.syscalls(pod.name)
            run = pod.wait()
            assert run.returncode == 0, run

            # the pod goes while no enricher runs: no watch event, no list will ever show it
            plane.kubectl("delete", "pod", pod.name, "-n", NS, "--force", "--grace-period=0")
            missing = plane.kubectl("get", "pod", pod.name, "-n", NS, check=False)
            assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr

            second = started(
                LogEnricher(
                    kubeconfig, kubelet, tmp_path / "second.log", ["--state-dir", str(state)]
                )
            )
            profile = eventually(
                "the deleted pod's profile exists",
                lambda: profile_of(plane, NS, f"gone-{CONTAINER}"),
                second,
                timeout=DEADLINE,
            )
        finally:
            first.stop(30)
            if second is not None:
                second.stop(30)

    assert profile["metadata"]["labels"] == {
        "spo.x-k8s.io/recording-id": "gone",
        "spo.x-k8s.io/container-id": CONTAINER,
    }
    names = set(allowed(profile))
    assert recorded <= names, f"missing from the profile: {sorted(recorded - names)}"
    assert told_first <= names, (
        f"what the first enricher saw is missing: {sorted(told_first - names)}"
    )
