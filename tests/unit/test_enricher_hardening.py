"""The log enricher against crafted input: a loss is only what the kernel itself reports (not a
userspace record that says so), one pid parser for the recorder and the enricher that takes the
record's own ``pid=`` and ASCII digits only, and a cap on the line length of the follower
(longer lines counted and dropped, memory flat)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from nodesync.enricher.auditlog import AvcRecord, SeccompRecord, parse, record_pid, scan
from nodesync.enricher.following import Follower
from nodesync.enricher.losses import LossDetector, loss_of_line

SECCOMP = (
    "type=SECCOMP msg=audit(1700000000.123:42): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'subj={subj} pid={pid} comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 '
    "compat=0 ip=0x4a3b2c code=0x7ffc0000"
)
AVC = (
    'type=AVC msg=audit(1700000000.123:43): avc:  denied  {{ read }} for  pid={pid} comm="cat" '
    'name="x" dev="sda" ino=1 scontext=system_u:system_r:container_t:s0:c1,c2 '
    "tcontext=system_u:object_r:var_t:s0 tclass=file permissive=1"
)

# -- losses: only the kernel's own reports ------------------------------------------------------

USERSPACE_LIES = [
    # any process with CAP_AUDIT_WRITE can write these records, with any text
    "type=USER msg=audit(1700000000.1:7): pid=1 uid=0 auid=0 ses=1 msg='op=x audit rate limit "
    "exceeded'",
    "type=USER msg=audit(1700000000.1:7): pid=1 uid=0 msg='audit: rate limit exceeded'",
    "type=USER msg=audit(1700000000.1:7): pid=1 uid=0 msg='audit: audit_lost=9 "
    "audit_rate_limit=0 audit_backlog_limit=64'",
    "type=USER_AVC msg=audit(1.0:1): pid=1 msg='kauditd_printk_skb: 5 callbacks suppressed'",
    # written to /dev/kmsg from userspace: the kernel gives it the user facility (prival >= 8)
    "12,100,5,-;audit: rate limit exceeded",
    "14,101,6,-;audit: backlog limit exceeded",
    # more text around the message
    "audit: rate limit exceeded because someone said so",
    "hello audit: rate limit exceeded",
    "audit: audit_lost=1",
]


@pytest.mark.parametrize("line", USERSPACE_LIES)
def test_userspace_text_is_no_loss(line: str) -> None:
    assert loss_of_line(line) is None
    detector = LossDetector()
    assert not detector.observe(line)
    assert not detector.lost


KERNEL_REPORTS = [
    ("4,100,5,-;audit: rate limit exceeded", "rate-limit", 0),
    ("0,100,5,-;audit: backlog limit exceeded", "backlog-limit", 0),
    ("audit: printk limit exceeded", "printk-limit", 0),
    (
        "4,9,1,-;audit: audit_lost=12 audit_rate_limit=100 audit_backlog_limit=64",
        "lost-counter",
        12,
    ),
    ("4,9,1,c;kauditd_printk_skb: 3 callbacks suppressed", "suppressed", 3),
]


@pytest.mark.parametrize(("line", "reason", "count"), KERNEL_REPORTS)
def test_kernel_reports_are_losses(line: str, reason: str, count: int) -> None:
    loss = loss_of_line(line)
    assert loss is not None and (loss.reason, loss.count) == (reason, count)


def test_kmsg_of_another_facility_is_no_loss(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        "12,1,100,-;audit: rate limit exceeded\n4,2,200,-;audit: backlog limit exceeded\n"
    )
    detector = LossDetector()
    assert detector.scan_kmsg(kmsg) == 1
    assert [loss.reason for loss in detector.losses] == ["backlog-limit"]


# -- one pid parser --------------------------------------------------------------------------


def test_the_record_s_own_pid_not_one_inside_subj() -> None:
    line = SECCOMP.format(subj="x pid=1 y", pid=1234)
    assert record_pid(line) == "1234"
    scanned = scan(line)
    assert scanned == ("1234", "c000003e", "83")
    record = parse(line)
    assert isinstance(record, SeccompRecord) and record.pid == 1234


def test_a_whole_forged_tail_inside_subj_is_not_taken() -> None:
    forged = (
        'x pid=1 comm="a" exe="/b" sig=0 arch=c000003e syscall=1 compat=0 ip=0x0 code=0x7fff0000'
    )
    line = SECCOMP.format(subj=forged, pid=1234)
    record = parse(line)
    assert isinstance(record, SeccompRecord) and (record.pid, record.syscall) == (1234, 83)
    assert scan(line) == ("1234", "c000003e", "83")


def test_recorder_and_enricher_agree_on_every_pid() -> None:
    for subj in ["unconfined", "x pid=1 y", "pid=99", "a pid=7 comm=x pid=8"]:
        line = SECCOMP.format(subj=subj, pid=4321)
        scanned = scan(line)
        record = parse(line)
        assert isinstance(scanned, tuple) and isinstance(record, SeccompRecord)
        assert int(scanned[0]) == record.pid == 4321


@pytest.mark.parametrize("pid", ["١٢٣", "12³", "१२", "12a", "", "-1"])
def test_a_pid_of_other_digits_is_no_record(pid: str) -> None:
    line = SECCOMP.format(subj="unconfined", pid=pid)
    assert record_pid(line) is None
    assert scan(line) is None
    assert parse(line) is None
    assert parse(AVC.format(pid=pid)) is None


def test_avc_pid_is_the_record_s_own() -> None:
    record = parse(AVC.format(pid=77))
    assert isinstance(record, AvcRecord) and record.pid == 77
    assert isinstance(scan(AVC.format(pid=77)), AvcRecord)


def test_a_syscall_of_other_digits_is_no_record() -> None:
    line = SECCOMP.format(subj="u", pid=5).replace("syscall=83", "syscall=٨٣")
    assert scan(line) is None
    assert parse(line) is None


# -- the follower's line cap ---------------------------------------------------------------------


def test_a_line_too_long_is_counted_and_dropped(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log, chunk_size=4096, max_line=1000)
    with log.open("a") as file:
        file.write("before\n" + "y" * 10_000 + "\nafter\n" + "z" * 1500 + "\nlast\n")
    got: list[str] = []
    for _ in range(20):
        got += follower.poll()
    assert got == ["before", "after", "last"]
    assert follower.long_lines == 2
    follower.commit()
    follower.close()


def test_a_long_line_read_whole_in_one_chunk_is_dropped_too(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log, chunk_size=1 << 20, max_line=100)
    with log.open("a") as file:
        file.write("a\n" + "b" * 500 + "\nc\n")
    assert follower.poll() == ["a", "c"]
    assert follower.long_lines == 1
    follower.close()


def test_memory_stays_flat_without_newlines(tmp_path: Path) -> None:
    """40 MB without a newline: the follower holds at most max_line + a chunk, and the next
    line after it is delivered."""
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log, chunk_size=1 << 20)
    with log.open("a") as file:
        for _ in range(40):
            file.write("x" * (1 << 20))
        file.write("\nnext\n")
    tracemalloc.start()
    try:
        got: list[str] = []
        for _ in range(60):
            got += follower.poll()
            assert len(follower._current.buffer) <= follower.max_line  # type: ignore[union-attr]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == ["next"]
    assert follower.long_lines == 1
    assert peak < 4 * (1 << 20), peak  # a chunk and the capped buffer, not 40 MB
    follower.close()
