"""Accumulating records per container, naming syscalls with the real table, and lost records."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodesync.enricher.containers import ContainerRef, ContainerResolver, Lookup, Unknown
from nodesync.enricher.losses import (
    LossDetector,
    RecordsLost,
    loss_of_line,
    lost_counter,
    printk_ratelimited,
)
from nodesync.enricher.recorder import Recorder

X86_64 = 0xC000003E
AARCH64 = 0xC00000B7
I386 = 0x40000003
WEB = "a" * 64
DB = "b" * 64
PIDS = {10: WEB, 11: WEB, 20: DB}
INDEX = {WEB: ContainerRef("shop", "web-1", "nginx"), DB: ContainerRef("shop", "db-0", "postgres")}


def seccomp(pid: int, number: int, arch: int = X86_64, serial: int = 1) -> str:
    return (
        f"type=SECCOMP msg=audit(1700000000.100:{serial}): auid=4294967295 uid=0 gid=0 "
        f'ses=4294967295 pid={pid} comm="c" exe="/bin/c" sig=0 arch={arch:x} syscall={number} '
        "compat=0 ip=0x1 code=0x7ffc0000"
    )


def avc(pid: int, perms: str, tcontext: str, tclass: str) -> str:
    return (
        f"type=AVC msg=audit(1700000000.200:9): avc:  denied  {{ {perms} }} for  pid={pid} "
        f'comm="c" scontext=system_u:system_r:container_t:s0:c1,c2 tcontext={tcontext} '
        f"tclass={tclass} permissive=1"
    )


def resolve(pid: int) -> Lookup:
    if pid in PIDS:
        return Lookup(PIDS[pid])
    if pid == 99:
        return Lookup(None, Unknown.VANISHED)
    return Lookup(None, Unknown.HOST)


def test_syscalls_are_named_per_container_and_deduplicated() -> None:
    recorder = Recorder(resolve)
    lines = [
        seccomp(10, 83),  # mkdir
        seccomp(11, 83),  # same container, other process
        seccomp(10, 257),  # openat
        seccomp(10, 1),  # write
        seccomp(20, 0),  # read, other container
        seccomp(1, 60),  # a host process
        seccomp(99, 60),  # vanished before its cgroup was read
        "type=SYSCALL msg=audit(1700000000.100:1): arch=c000003e syscall=83 pid=10",
        "",
    ]
    assert recorder.consume(lines) == 7
    found = recorder.seccomp(INDEX)
    assert found[INDEX[WEB]].names == ("mkdir", "openat", "write")
    assert found[INDEX[WEB]].architectures == ("SCMP_ARCH_X86_64",)
    assert found[INDEX[WEB]].records == 4
    assert found[INDEX[DB]].names == ("read",)
    counts = recorder.counts
    assert (counts.lines, counts.seccomp, counts.attributed, counts.host, counts.vanished) == (
        9,
        7,
        5,
        1,
        1,
    )


def test_arch_decides_the_name_of_a_number() -> None:
    recorder = Recorder(resolve)
    # 56 is clone on x86_64, openat on aarch64; 5 is open on i386; x32 has the 0x40000000 bit
    recorder.consume(
        [
            seccomp(10, 56),
            seccomp(20, 56, AARCH64),
            seccomp(20, 5, I386),
            seccomp(10, 0x40000000 + 1),
        ]
    )
    web = recorder.seccomp_of(WEB)
    db = recorder.seccomp_of(DB)
    assert web is not None and db is not None
    assert "clone" in web.names and "write" in web.names
    assert set(web.architectures) == {"SCMP_ARCH_X86_64", "SCMP_ARCH_X32"}
    assert db.names == ("open", "openat")
    assert db.architectures == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_X86")


def test_unknown_numbers_are_reported_not_invented() -> None:
    recorder = Recorder(resolve)
    recorder.consume([seccomp(10, 9999), seccomp(10, 83)])
    web = recorder.seccomp_of(WEB)
    assert web is not None
    assert web.names == ("mkdir",)
    assert web.unknown == ("arch=c000003e syscall=9999",)


def test_ids_not_yet_in_a_pod_status_are_kept_until_they_are() -> None:
    recorder = Recorder(resolve)
    recorder.consume([seccomp(10, 83)])
    assert recorder.seccomp({}) == {}  # the kubelet has not reported the container id yet
    assert recorder.container_ids() == {WEB}
    assert list(recorder.seccomp(INDEX)) == [INDEX[WEB]]
    assert recorder.seccomp(INDEX, wanted=lambda ref: ref.pod == "db-0") == {}
    recorder.forget(WEB)
    assert recorder.seccomp(INDEX) == {}


def test_avc_permissions_per_target_type_and_class() -> None:
    recorder = Recorder(resolve)
    recorder.consume(
        [
            avc(10, "read", "system_u:object_r:var_lib_t:s0", "file"),
            avc(11, "read write open", "system_u:object_r:var_lib_t:s0", "file"),
            avc(10, "name_bind", "system_u:object_r:http_port_t:s0", "tcp_socket"),
            avc(10, "search", "system_u:object_r:var_lib_t:s0", "dir"),
            avc(1, "read", "system_u:object_r:etc_t:s0", "file"),  # host
        ]
    )
    found = recorder.selinux(INDEX)
    web = found[INDEX[WEB]]
    assert dict(web.allow) == {
        "http_port_t": {"tcp_socket": ("name_bind",)},
        "var_lib_t": {"dir": ("search",), "file": ("open", "read", "write")},
    }
    assert web.source_types == ("container_t",)
    assert web.records == 4
    assert INDEX[DB] not in found


def test_each_callback_sees_every_record_with_its_container() -> None:
    seen: list[tuple[int, str | None]] = []
    recorder = Recorder(resolve)
    recorder.consume(
        [seccomp(10, 83), seccomp(1, 1), "noise"], each=lambda r, c: seen.append((r.pid, c))
    )
    assert seen == [(10, WEB), (1, None)]


def test_real_resolver_with_a_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "cgroup").write_text(
        f"0::/kubepods/besteffort/pod{'1' * 8}-1111-1111-1111-{'1' * 12}/{WEB}\n"
    )
    recorder = Recorder(ContainerResolver(tmp_path).lookup)
    recorder.consume([seccomp(10, 83), seccomp(10, 83), seccomp(12, 83)])
    assert recorder.counts.attributed == 2 and recorder.counts.vanished == 1
    assert recorder.seccomp(INDEX)[INDEX[WEB]].names == ("mkdir",)


KERNEL_LOSSES = [
    ("[ 101.1] audit: rate limit exceeded", "rate-limit", 0),
    ("kernel: audit: backlog limit exceeded", "backlog-limit", 0),
    ("6,999,123,-;audit: printk limit exceeded", "printk-limit", 0),
    (
        "audit: audit_lost=126533574 audit_rate_limit=0 audit_backlog_limit=64",
        "lost-counter",
        126533574,
    ),
    ("[ 5.0] kauditd_printk_skb: 23 callbacks suppressed", "suppressed", 23),
]


@pytest.mark.parametrize(("line", "reason", "count"), KERNEL_LOSSES)
def test_kernel_messages_about_lost_records(line: str, reason: str, count: int) -> None:
    loss = loss_of_line(line)
    assert loss is not None and (loss.reason, loss.count) == (reason, count)


@pytest.mark.parametrize(
    "line",
    [
        "net_ratelimit: 5 callbacks suppressed",  # not audit's
        'type=SYSCALL msg=audit(1.0:1): comm="exceeded"',
        "ordinary line",
    ],
)
def test_other_lines_are_no_loss(line: str) -> None:
    assert loss_of_line(line) is None


def test_a_loss_in_the_stream_flags_the_recording_loudly(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(resolve)
    recorder.consume([seccomp(10, 83)])
    recorder.detector.ensure_complete()  # nothing lost yet
    recorder.consume(["kauditd_printk_skb: 7 callbacks suppressed", seccomp(10, 1)])
    assert recorder.detector.lost
    assert any(r.levelname == "ERROR" and "incomplete" in r.getMessage() for r in caplog.records)
    with pytest.raises(RecordsLost, match="suppressed"):
        recorder.detector.ensure_complete()


def test_lost_counter_of_auditctl() -> None:
    status = "enabled 1\nfailure 1\npid 812\nrate_limit 0\nbacklog_limit 8192\nlost 42\nbacklog 0\n"
    assert lost_counter(status) == 42
    assert lost_counter("enabled 1\n") is None
    detector = LossDetector()
    detector.counter(42)
    detector.counter(None)
    detector.counter(42)
    assert not detector.lost
    detector.counter(50)
    assert detector.lost and detector.losses[0].count == 8


def test_kernel_log_source_is_flagged_unless_printk_is_unlimited(tmp_path: Path) -> None:
    sysctl = tmp_path / "sys" / "kernel"
    sysctl.mkdir(parents=True)
    (sysctl / "printk_ratelimit").write_text("5\n")
    assert printk_ratelimited(tmp_path)
    detector = LossDetector()
    detector.kernel_log_source(tmp_path)
    assert detector.lost and detector.losses[0].reason == "kernel-log"
    (sysctl / "printk_ratelimit").write_text("0\n")
    unlimited = LossDetector()
    unlimited.kernel_log_source(tmp_path)
    assert not unlimited.lost


def test_scan_kmsg_copy(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        "6,1,100,-;audit: type=1326 audit(1.0:1): pid=1 arch=c000003e syscall=1\n"
        "4,2,200,-;audit: printk limit exceeded\n"
    )
    detector = LossDetector()
    assert detector.scan_kmsg(kmsg) == 1
    assert detector.losses[0].reason == "printk-limit"
