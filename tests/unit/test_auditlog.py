"""Parsing SECCOMP and AVC audit records from auditd's log and from the kernel log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodesync.enricher.auditlog import (
    AvcRecord,
    SeccompRecord,
    context_type,
    decode_value,
    last_event_time,
    last_event_time_of_text,
    parse,
    scan,
)

# As auditd 3.0.9 wrote it on the test machine (log_format = ENRICHED).
AUDITD_ENRICHED = (
    "type=SECCOMP msg=audit(1795431077.297:5): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'pid=24087 comm="runc:[2:INIT]" exe="/" sig=0 arch=c000003e syscall=257 compat=0 '
    'ip=0x40828e code=0x7ffc0000\x1dAUID="unset" UID="root" GID="root" ARCH=x86_64 SYSCALL=openat'
)
AUDITD_RAW = (
    "type=SECCOMP msg=audit(1700000000.004:91): auid=1000 uid=0 gid=0 ses=3 "
    'subj=system_u:system_r:container_t:s0:c1,c2 pid=4242 comm="mkdir" exe="/bin/busybox" '
    "sig=0 arch=c000003e syscall=83 compat=0 ip=0x4a1b2c code=0x7ffc0000"
)
KERNEL_LOG = (
    "Nov 23 10:51:02 node1 kernel: [ 1234.567890] audit: type=1326 audit(1700000001.250:77): "
    'auid=4294967295 uid=0 gid=0 ses=4294967295 pid=99 comm="ls" exe="/bin/ls" sig=0 '
    "arch=c00000b7 syscall=56 compat=0 ip=0xffff8 code=0x7ffc0000"
)
KMSG = (
    "5,4242,123456789,-;audit: type=1326 audit(1700000002.001:78): auid=4294967295 uid=0 gid=0 "
    'ses=4294967295 pid=100 comm="sh" exe="/bin/sh" sig=31 arch=40000003 syscall=5 compat=1 '
    "ip=0xf7f0 code=0x80000000"
)
AVC_DENIED = (
    "type=AVC msg=audit(1700000003.100:200): avc:  denied  { read write } for  pid=321 "
    'comm="cat" name="data" dev="sda1" ino=1234 '
    "scontext=system_u:system_r:container_t:s0:c10,c20 "
    "tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=1"
)
AVC_KERNEL = (
    "audit: type=1400 audit(1700000004.200:201): avc:  granted  { setenforce } for  pid=9 "
    'comm="load_policy" scontext=unconfined_u:unconfined_r:unconfined_t:s0 '
    "tcontext=system_u:object_r:security_t:s0 tclass=security"
)


def test_auditd_enriched_seccomp_record() -> None:
    assert parse(AUDITD_ENRICHED) == SeccompRecord(
        timestamp=1795431077.297,
        serial=5,
        pid=24087,
        comm="runc:[2:INIT]",
        exe="/",
        arch=0xC000003E,
        syscall=257,
        code=0x7FFC0000,
    )


def test_auditd_raw_seccomp_record_with_a_subject() -> None:
    record = parse(AUDITD_RAW)
    assert isinstance(record, SeccompRecord)
    assert (record.pid, record.comm, record.exe, record.syscall) == (
        4242,
        "mkdir",
        "/bin/busybox",
        83,
    )
    assert (record.timestamp, record.serial, record.code) == (1700000000.004, 91, 0x7FFC0000)
    assert record.kind == "seccomp"


def test_node_name_prefix_of_auditd_name_format() -> None:
    record = parse("node=worker-1 " + AUDITD_RAW)
    assert isinstance(record, SeccompRecord) and record.pid == 4242


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (KERNEL_LOG, (1700000001.25, 77, 99, "ls", 0xC00000B7, 56, 0x7FFC0000)),
        (KMSG, (1700000002.001, 78, 100, "sh", 0x40000003, 5, 0x80000000)),
    ],
)
def test_kernel_log_forms(line: str, expected: tuple[object, ...]) -> None:
    record = parse(line)
    assert isinstance(record, SeccompRecord)
    got = (
        record.timestamp,
        record.serial,
        record.pid,
        record.comm,
        record.arch,
        record.syscall,
        record.code,
    )
    assert got == expected


def test_hex_encoded_untrusted_strings_are_decoded() -> None:
    # a comm with a space and an exe with a space are logged as unquoted hex
    line = AUDITD_RAW.replace('comm="mkdir"', "comm=6D79207461736B").replace(
        'exe="/bin/busybox"', "exe=2F746D702F6D792070726F67"
    )
    record = parse(line)
    assert isinstance(record, SeccompRecord)
    assert (record.comm, record.exe) == ("my task", "/tmp/my prog")


def test_fields_in_another_order_are_still_found() -> None:
    line = (
        "type=SECCOMP msg=audit(1700000000.5:1): code=0x7ffc0000 syscall=2 arch=c000003e "
        'exe="/x" comm="y" pid=5 auid=0'
    )
    record = parse(line)
    assert isinstance(record, SeccompRecord)
    assert (record.pid, record.syscall, record.arch, record.comm, record.exe) == (
        5,
        2,
        0xC000003E,
        "y",
        "/x",
    )


def test_avc_denied() -> None:
    record = parse(AVC_DENIED)
    assert isinstance(record, AvcRecord)
    assert record.perms == ("read", "write")
    assert (record.pid, record.comm, record.tclass) == (321, "cat", "file")
    assert record.scontext == "system_u:system_r:container_t:s0:c10,c20"
    assert (record.source_type, record.target_type) == ("container_t", "var_lib_t")
    assert record.denied and record.permissive
    assert (record.timestamp, record.serial, record.kind) == (1700000003.1, 200, "selinux")


def test_avc_granted_from_the_kernel_log() -> None:
    record = parse(AVC_KERNEL)
    assert isinstance(record, AvcRecord)
    assert not record.denied and not record.permissive
    assert record.perms == ("setenforce",) and record.tclass == "security"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello world",
        (
            "type=SYSCALL msg=audit(1700000000.004:91): arch=c000003e syscall=83 success=yes "
            'pid=1 comm="x"'
        ),
        "type=PROCTITLE msg=audit(1700000000.004:91): proctitle=6D6B646972",
        (
            "type=USER_AVC msg=audit(1.0:1): pid=1 uid=0 msg='avc:  denied  { status } for "
            "scontext=a:b:c tcontext=a:b:c tclass=system'"
        ),
        'type=SECCOMP msg=audit(1700000000.004:91): pid=12 comm="x"',  # no arch/syscall
        "type=SECCOMP msg=audit(garbage): pid=1 arch=c000003e syscall=1",
        'type=SECCOMP msg=audit(1.0:1): pid=x comm="a" exe="b" arch=c000003e syscall=1 code=0',
        (
            "type=AVC msg=audit(1.0:1): avc:  denied  { } for pid=1 "
            "scontext=a:b:c tcontext=a:b:c tclass=file"
        ),
        "type=AVC msg=audit(1.0:1): avc:  denied  { read } for pid=1 tclass=file",
        "type=SECCOMP",
    ],
)
def test_other_or_malformed_lines_are_none(line: str) -> None:
    assert parse(line) is None


def test_helpers() -> None:
    assert context_type("u:r:t:s0:c1,c2") == "t"
    assert context_type("odd") == ""
    assert decode_value('"quoted"') == "quoted"
    assert decode_value("(null)") == "(null)"
    assert decode_value("414243") == "ABC"
    assert decode_value("XYZW") == "XYZW"


@given(st.text(max_size=300))
def test_parse_never_raises(text: str) -> None:
    record = parse(text)
    assert record is None or isinstance(record, SeccompRecord | AvcRecord)


@given(
    st.integers(0, 2**22),
    st.integers(0, 1000),
    st.sampled_from([0xC000003E, 0xC00000B7, 0x40000003]),
    st.text(alphabet="abcdefghij:[]_-0123456789", min_size=1, max_size=15),
)
def test_round_trip_of_generated_records(pid: int, number: int, arch: int, comm: str) -> None:
    line = (
        f"type=SECCOMP msg=audit(1700000000.123:{pid + 1}): auid=0 uid=0 gid=0 ses=1 pid={pid} "
        f'comm="{comm}" exe="/bin/{comm}" sig=0 arch={arch:x} syscall={number} '
        "compat=0 ip=0x1 code=0x7ffc0000"
    )
    record = parse(line)
    assert isinstance(record, SeccompRecord)
    assert (record.pid, record.syscall, record.arch, record.comm, record.exe) == (
        pid,
        number,
        arch,
        comm,
        f"/bin/{comm}",
    )
    assert record.serial == pid + 1
    assert scan(line) == (str(pid), f"{arch:x}", str(number))


def scanned_as(line: str) -> object:
    record = parse(line)
    if isinstance(record, SeccompRecord):
        return (str(record.pid), f"{record.arch:x}", str(record.syscall))
    return record


@pytest.mark.parametrize(
    "line",
    [
        AUDITD_ENRICHED,
        AUDITD_RAW,
        KERNEL_LOG,
        KMSG,
        AVC_DENIED,
        AVC_KERNEL,
        "type=SECCOMP msg=audit(1700000000.5:1): code=0x7ffc0000 syscall=2 arch=c000003e "
        'exe="/x" comm="y" pid=5 auid=0',
        'type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=83 success=yes pid=1 comm="x"',
        'type=SECCOMP msg=audit(1.0:1): pid=x comm="a" exe="b" arch=c000003e syscall=1 code=0',
        'type=SECCOMP msg=audit(1.0:1): pid=1 comm="a" exe="b" arch=c000003e syscall=z code=0',
        "hello",
    ],
)
def test_the_recorders_lean_scan_agrees_with_parse(line: str) -> None:
    assert scan(line) == scanned_as(line)


@given(
    st.lists(
        st.sampled_from(
            [
                "",
                "hello",
                "type=EOE msg=audit(1700000000.004:91): ",
                "type=SYSCALL msg=audit(1700000001.5:92): arch=c000003e",
                "msg=audit(garbage): x",
                "type=USER msg=audit(1700000002.25:93): msg='audit(1.0:1)'",
                "audit(",
            ]
        ),
        max_size=8,
    )
)
def test_the_last_event_time_of_a_batch_s_text_is_that_of_its_lines(lines: list[str]) -> None:
    assert last_event_time_of_text("\n".join(lines)) == last_event_time(lines or [""])
