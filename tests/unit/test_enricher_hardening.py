"""The log enricher against crafted input: a loss is only what the kernel itself reports (not a
userspace record that says so), one pid parser for the recorder and the enricher that takes the
record's own ``pid=`` and ASCII digits only, and a cap on the line length of the follower
(longer lines counted and dropped, memory flat)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from nodesync.enricher.auditlog import (
    AvcRecord,
    SeccompRecord,
    may_report_loss,
    parse,
    record_pid,
    scan,
    scan_batch,
    scan_told,
    told_fields,
)
from nodesync.enricher.containers import ContainerRef, Lookup, Unknown
from nodesync.enricher.enriching import LogEnricher
from nodesync.enricher.following import Follower
from nodesync.enricher.losses import LossDetector, loss_of_line
from nodesync.enricher.recorder import Recorder

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


@pytest.mark.parametrize(("line", "reason", "count"), KERNEL_REPORTS)
@pytest.mark.parametrize("where", [0, 1, 3])
def test_a_kernel_report_among_auditd_lines_is_seen_in_a_batch(
    line: str, reason: str, count: int, where: int
) -> None:
    """A batch of auditd's lines only is not searched for reports of losses: one that holds a
    kernel message, wherever it is, is."""
    lines = [SECCOMP.format(subj="u", pid=1)] * 3
    lines.insert(where, line)
    for variant in (lines, [f"node=n1 {other}" if other != line else line for other in lines]):
        assert may_report_loss("\n".join(variant))
        recorder = Recorder(lambda pid: Lookup("c" * 64))
        recorder.consume_text(
            "\n".join(variant), each=LogEnricher("n", CollectorRegistry(), {}.get)
        )
        assert [(loss.reason, loss.count) for loss in recorder.detector.losses] == [(reason, count)]
    assert not may_report_loss("\n".join(lines[:where] + lines[where + 1 :]))
    assert not may_report_loss("\n".join(USERSPACE_LIES[:4]))


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
    assert scan_told(line) is None
    batch = scan_batch([line])
    assert batch is None or not [fields for _, fields, _ in batch.records if fields]
    assert told([line, AVC.format(pid=pid)])[0] == []
    assert told([line.replace("pid=", "pid=1234 comm=x pid=")])[0] == []


def test_a_syscall_of_other_digits_is_no_record_on_any_path() -> None:
    line = seccomp_line("u").replace("syscall=83", "syscall=٨٣")
    assert scan_told(line) is None
    assert told([line])[0] == []


def test_avc_pid_is_the_record_s_own() -> None:
    record = parse(AVC.format(pid=77))
    assert isinstance(record, AvcRecord) and record.pid == 77
    assert isinstance(scan(AVC.format(pid=77)), AvcRecord)


def test_a_syscall_of_other_digits_is_no_record() -> None:
    line = SECCOMP.format(subj="u", pid=5).replace("syscall=83", "syscall=٨٣")
    assert scan(line) is None
    assert parse(line) is None


# -- the same pid on every path: line by line, by batch, recorded and told ---------------------

VICTIM, ATTACKER = "v" * 64, "a" * 64
PODS = {
    VICTIM: ContainerRef("bank", "vault-0", "vault"),
    ATTACKER: ContainerRef("tenant", "evil-0", "app"),
}
OWNERS = {1: Lookup(VICTIM), 1234: Lookup(ATTACKER)}
FORGED = 'pid=1 comm="a" exe="/b" sig=0 arch=c000003e syscall=1'
ENRICHMENT = '\x1dAUID="unset" UID="root" GID="root" ARCH=x86_64 SYSCALL=mkdir'


def seccomp_line(subj: str, comm: str = '"mkdir"', exe: str = '"/bin/busybox"') -> str:
    """A SECCOMP record as audit_log_task() and audit_seccomp() write it, of pid 1234."""
    return (
        "type=SECCOMP msg=audit(1700000000.123:42): auid=4294967295 uid=0 gid=0 ses=4294967295 "
        f"subj={subj} pid=1234 comm={comm} exe={exe} sig=0 arch=c000003e syscall=83 "
        "compat=0 ip=0x4a3b2c code=0x7ffc0000"
    )


def _owner(pid: int) -> Lookup:
    return OWNERS.get(pid, Lookup(None, Unknown.HOST))


def told(lines: list[str]) -> tuple[list[tuple[int, str]], Recorder]:
    """(pid, pod) of every line the log enricher writes for ``lines``, and its recorder."""
    written: list[str] = []
    recorder = Recorder(_owner)
    recorder.consume(lines, each=LogEnricher("n1", CollectorRegistry(), PODS.get, written.append))
    return [(json.loads(line)["pid"], json.loads(line)["pod"]) for line in written], recorder


def every_pid(line: str) -> set[object]:
    """The pid each parser gives the SECCOMP record on ``line``."""
    record, scanned, lean = parse(line), scan(line), scan_told(line)
    batch = scan_batch([line])
    assert isinstance(record, SeccompRecord) and isinstance(scanned, tuple)
    assert isinstance(lean, tuple) and batch is not None
    assert record.syscall == 83 and scanned[2] == lean[4] == "83"
    return {
        record_pid(line),
        str(record.pid),
        scanned[0],
        lean[1],
        *(told_fields(fields)[0] for _, fields, _ in batch.records),
    }


CRAFTED_SUBJECTS = [
    "unconfined",
    "x pid=1 y",  # a label with spaces and a pid= in it
    "label pid=1",  # ... just before the record's own
    f"x {FORGED}",  # a forged record's fields, then the real ones
    f"x {FORGED} compat=0 ip=0x0 code=0x7fff0000",  # ... with the forged end of a record
    f"{FORGED} (enforce)",  # ... as the start of a label
    f"x {FORGED} (enforce)",
]


@pytest.mark.parametrize("subj", CRAFTED_SUBJECTS)
@pytest.mark.parametrize(
    ("comm", "exe"),
    [
        ('"mkdir"', '"/bin/busybox"'),
        ("6D7920617070", '"/bin/busybox"'),  # "my app": a space, so the kernel writes hex
        ("2070696420313D3120", "2F62696E2F6D7920617070"),  # ' pid 1=1 ', "/bin/my app"
        ("22612220706964", '"/x"'),  # '"a" pid': quotes, in hex
    ],
)
@pytest.mark.parametrize("enriched", [False, True])
def test_every_path_takes_the_record_s_own_pid(
    subj: str, comm: str, exe: str, enriched: bool
) -> None:
    line = seccomp_line(subj, comm, exe) + (ENRICHMENT + ' pid=1 comm="a"' if enriched else "")
    assert every_pid(line) == {"1234"}
    lines, recorder = told([line])
    assert lines == [(1234, "evil-0")]  # told as the attacker's own, not the victim's
    assert recorder.container_ids() == {ATTACKER}
    lean = Recorder(_owner)
    lean.consume([line])  # the recorder alone (a recording without the log enricher)
    assert lean.container_ids() == {ATTACKER}


def test_a_batch_of_crafted_lines_is_told_as_line_by_line() -> None:
    lines = [seccomp_line(subj) for subj in CRAFTED_SUBJECTS]
    assert scan_batch(lines) is not None
    told_lines, recorder = told(lines)
    assert told_lines == [(1234, "evil-0")] * len(lines)
    seccomp = recorder.seccomp_of(ATTACKER)
    assert seccomp is not None and (seccomp.names, seccomp.records) == (("mkdir",), len(lines))
    assert recorder.seccomp_of(VICTIM) is None


HIDDEN = [
    # a userspace record's msg='...' holds any text (it is not escaped)
    "type=USER_ACCT msg=audit(1700000000.1:7): pid=812 uid=0 auid=0 ses=1 msg='op=x "
    + seccomp_line("u").replace("pid=1234", "pid=1")
    + "'",
    "type=USER_AVC msg=audit(1700000000.1:8): pid=812 uid=0 msg='" + AVC.format(pid=1) + "'",
    "node=n1 type=USER msg=audit(1700000000.1:9): pid=1 msg='type=SECCOMP x'",
    # a label (subj=) of a SYSCALL record, unescaped
    "type=SYSCALL msg=audit(1700000000.1:10): arch=c000003e syscall=83 success=yes pid=1 "
    "subj=x " + seccomp_line("u").replace("pid=1234", "pid=1"),
]


@pytest.mark.parametrize("hidden", HIDDEN)
def test_a_record_s_text_inside_another_record_is_no_record(hidden: str) -> None:
    """A line is the record its first ``type=`` names, line by line and by batch."""
    assert parse(hidden) is None and scan(hidden) is None and scan_told(hidden) is None
    lines = [seccomp_line("u"), hidden, seccomp_line("u"), hidden, hidden]
    batch = scan_batch(lines)
    if batch is not None:
        assert batch.avc == []
        assert [told_fields(fields)[0] for _, fields, _ in batch.records if fields] == [
            "1234",
            "1234",
        ]
    told_lines, recorder = told(lines)
    assert told_lines == [(1234, "evil-0")] * 2
    assert recorder.container_ids() == {ATTACKER}
    assert (recorder.counts.seccomp, recorder.counts.avc) == (2, 0)


@pytest.mark.parametrize("comm", ['"cat"', "2070696420313D31", "6361742070"])
def test_an_avc_record_s_own_pid_line_by_line_and_by_batch(comm: str) -> None:
    line = AVC.format(pid=1234).replace('comm="cat"', f"comm={comm}")
    record = parse(line)
    assert isinstance(record, AvcRecord) and record.pid == 1234
    assert record_pid(line) == "1234"
    assert told([line])[0] == [(1234, "evil-0")]


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
