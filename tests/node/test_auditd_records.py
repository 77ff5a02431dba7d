"""The recorder against the real thing: auditd's log of a runc container under SCMP_ACT_LOG.

The container is put in a cgroup laid out as the kubelet's cgroupfs driver does
(``/kubepods/besteffort/pod<uid>/<64-hex id>``), a pod object names that id in
its container statuses, and the follower + parser + resolver (real ``/proc``) +
recorder must name the syscalls the workload made, for that pod's container.
Midway, auditd rotates its log (``kill -USR1``): the follower must lose nothing.

The workload is a tiny static program (built below) that calls mkdir, sleeps,
rmdir, sleeps and exits, all in one process: a process that exits before its
record is read (``sh -c 'mkdir ...'`` forks a short-lived mkdir) can no longer
be mapped to its container through ``/proc`` (the recorder counts those as
``vanished``).
"""

from __future__ import annotations

import os
import signal
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from nodesync.enricher.auditlog import SeccompRecord, parse
from nodesync.enricher.containers import ContainerRef, ContainerResolver, container_index
from nodesync.enricher.enriching import LogEnricher
from nodesync.enricher.following import Follower
from nodesync.enricher.recorder import Recorder
from nodesync.enricher.state import StateFile
from tests.helpers.auditd import AUDIT_LOG, auditd_running
from tests.helpers.runc_bundle import Bundle, Run

pytestmark = pytest.mark.node

AUDITD_PIDFILE = Path("/run/auditd.pid")
WAIT = 30.0  # seconds before a missing record is a failure, not a measurement


def mkdir_sleep_rmdir_elf(path: bytes, seconds: int) -> bytes:
    """A static x86-64 program: mkdir(path), nanosleep(seconds), rmdir(path), nanosleep, exit(0)."""
    code = bytearray()
    fixups: list[tuple[int, str]] = []

    def lea_rdi(label: str) -> None:  # lea rdi, [rip + label]
        code.extend(b"\x48\x8d\x3d")
        fixups.append((len(code), label))
        code.extend(bytes(4))

    def call(number: int) -> None:  # mov eax, number; syscall
        code.extend(b"\xb8" + struct.pack("<I", number) + b"\x0f\x05")

    lea_rdi("path")
    code.extend(b"\xbe" + struct.pack("<I", 0o755))  # mov esi, 0755
    call(83)  # mkdir
    lea_rdi("timespec")
    code.extend(b"\x31\xf6")  # xor esi, esi
    call(35)  # nanosleep
    lea_rdi("path")
    call(84)  # rmdir
    lea_rdi("timespec")
    code.extend(b"\x31\xf6")
    call(35)
    code.extend(b"\x31\xff")  # xor edi, edi
    call(231)  # exit_group
    labels = {"timespec": len(code)}
    code.extend(struct.pack("<qq", seconds, 0))
    labels["path"] = len(code)
    code.extend(path + b"\0")
    for at, label in fixups:
        struct.pack_into("<i", code, at, labels[label] - (at + 4))
    base = 0x400000
    size = 64 + 56 + len(code)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + program + bytes(code)


@pytest.fixture
def auditd() -> Iterator[int]:
    """The pid of a running auditd; started (and stopped afterwards) if none runs."""
    with auditd_running() as pid:
        yield pid


def serials_of(lines: list[str], pids: set[int]) -> set[int]:
    return {
        record.serial
        for record in map(parse, lines)
        if isinstance(record, SeccompRecord) and record.pid in pids
    }


def file_with_inode(directory: Path, inode: int) -> Path | None:
    for path in directory.iterdir():
        if path.stat().st_ino == inode:
            return path
    return None


def test_recorded_syscalls_of_a_pod_container_survive_a_log_rotation(
    auditd: int, bundle: Bundle, tmp_path: Path
) -> None:
    container_id = uuid.uuid4().hex + uuid.uuid4().hex
    pod_uid = str(uuid.uuid4())
    program = bundle.path / "rootfs" / "bin" / "mkrm"
    program.write_bytes(mkdir_sleep_rmdir_elf(b"/tmp/recorded", 3))
    program.chmod(0o755)
    bundle.config["linux"]["cgroupsPath"] = f"/kubepods/besteffort/pod{pod_uid}/{container_id}"
    pod = {
        "metadata": {"namespace": "recording", "name": "workload", "uid": pod_uid},
        "status": {
            "containerStatuses": [{"name": "mkrm", "containerID": f"containerd://{container_id}"}]
        },
    }
    index = container_index([pod])
    ref = ContainerRef("recording", "workload", "mkrm")

    follower = Follower(AUDIT_LOG, StateFile(tmp_path / "offset.json"), rotation_grace=1.0)
    (start,) = follower.positions  # a fresh start: the end of the log
    recorder = Recorder(ContainerResolver().lookup)
    logged: list[str] = []
    enricher = LogEnricher("node-under-test", CollectorRegistry(), index.get, logged.append)
    delivered: list[str] = []

    def step() -> None:
        batch = follower.poll()
        delivered.extend(batch)
        recorder.consume(batch, each=enricher)

    def names() -> tuple[str, ...]:
        recorded = recorder.seccomp_of(container_id)
        return recorded.names if recorded is not None else ()

    result: list[Run] = []
    runner = threading.Thread(
        target=lambda: result.append(bundle.run(["/bin/mkrm"], {"defaultAction": "SCMP_ACT_LOG"}))
    )
    runner.start()
    try:
        deadline = time.monotonic() + WAIT
        while "mkdir" not in names() and time.monotonic() < deadline and runner.is_alive():
            step()
            time.sleep(0.01)
        assert "mkdir" in names(), f"no mkdir recorded for the container: {recorder.counts}"
        assert "rmdir" not in names()  # the workload sleeps before its rmdir
        os.kill(auditd, signal.SIGUSR1)  # auditd rotates its log now
        while (runner.is_alive() or "rmdir" not in names()) and time.monotonic() < deadline:
            step()
            time.sleep(0.01)
    finally:
        runner.join(WAIT)
    for _ in range(20):  # whatever auditd still had to write
        step()
        time.sleep(0.01)
    follower.checkpoint()
    follower.close()

    assert result and result[0].returncode == 0, result
    assert follower.rotations >= 1

    recorded = recorder.seccomp(index)[ref]
    assert {"mkdir", "nanosleep", "rmdir"} <= set(recorded.names)
    assert recorded.architectures == ("SCMP_ARCH_X86_64",)

    # nothing lost, nothing repeated: every SECCOMP record of the container's processes in
    # the rotated file (after where the follower started) and in the new file was delivered once
    pids = {
        record.pid
        for record in map(parse, delivered)
        if isinstance(record, SeccompRecord) and record.comm in ("mkrm", "runc:[2:INIT]")
    }
    rotated = file_with_inode(AUDIT_LOG.parent, start.inode)
    assert rotated is not None and rotated != AUDIT_LOG
    with rotated.open("rb") as old:
        old.seek(start.offset)
        truth = old.read().decode("utf-8", "replace").splitlines()
    truth += AUDIT_LOG.read_text(errors="replace").splitlines()
    delivered_serials = [
        record.serial
        for record in map(parse, delivered)
        if isinstance(record, SeccompRecord) and record.pid in pids
    ]
    assert len(delivered_serials) == len(set(delivered_serials))
    assert set(delivered_serials) == serials_of(truth, pids)
    assert len(delivered_serials) > 10

    # the log enricher told the same story
    mkdir_lines = [line for line in logged if '"syscallName":"mkdir"' in line]
    assert (
        mkdir_lines
        and '"pod":"workload"' in mkdir_lines[0]
        and '"namespace":"recording"' in mkdir_lines[0]
    )
