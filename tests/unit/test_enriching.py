"""The log enricher: one JSON line per record of a pod's container, and the audit counters
(named and labelled as the Go operator's)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from nodesync.enricher import enriching
from nodesync.enricher.auditlog import parse, scan_batch
from nodesync.enricher.containers import ContainerRef, Lookup, Unknown
from nodesync.enricher.enriching import LogEnricher
from nodesync.enricher.recorder import Recorder

WEB = "a" * 64
INDEX = {WEB: ContainerRef("shop", "web-1", "nginx")}
SECCOMP = (
    "type=SECCOMP msg=audit(1700000000.123:42): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'pid=7 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 '
    "compat=0 ip=0x1 code=0x7ffc0000"
)
AVC = (
    'type=AVC msg=audit(1700000001.5:43): avc:  denied  { read write } for  pid=7 comm="cat" '
    "scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:var_t:s0 "
    "tclass=file permissive=0"
)
METRIC = "security_profiles_operator_seccomp_profile_audit_total"
AVC_METRIC = "security_profiles_operator_selinux_profile_audit_total"


def make(include_unattributed: bool = False) -> tuple[LogEnricher, CollectorRegistry, list[str]]:
    registry = CollectorRegistry()
    written: list[str] = []
    enricher = LogEnricher(
        "node-1", registry, INDEX.get, written.append, include_unattributed=include_unattributed
    )
    return enricher, registry, written


def test_seccomp_line_has_exactly_the_fields() -> None:
    enricher, registry, written = make()
    record = parse(SECCOMP)
    assert record is not None
    enricher.enrich(record, WEB)
    assert [json.loads(line) for line in written] == [
        {
            "msg": "audit",
            "timestamp": "1700000000.123:42",
            "type": "seccomp",
            "node": "node-1",
            "namespace": "shop",
            "pod": "web-1",
            "container": "nginx",
            "executable": "/bin/busybox",
            "pid": 7,
            "syscallID": 83,
            "syscallName": "mkdir",
        }
    ]
    labels = {
        "node": "node-1",
        "namespace": "shop",
        "pod": "web-1",
        "container": "nginx",
        "executable": "/bin/busybox",
        "syscall": "mkdir",
    }
    assert registry.get_sample_value(METRIC, labels) == 1.0
    enricher.enrich(record, WEB)
    assert registry.get_sample_value(METRIC, labels) == 2.0


def test_avc_line_adds_the_selinux_fields_and_counts_as_selinux_only() -> None:
    enricher, registry, written = make()
    record = parse(AVC)
    assert record is not None
    enricher.enrich(record, WEB)
    (line,) = [json.loads(text) for text in written]
    assert line["type"] == "selinux"
    assert (line["scontext"], line["tcontext"], line["tclass"], line["perm"]) == (
        "system_u:system_r:container_t:s0:c1,c2",
        "system_u:object_r:var_t:s0",
        "file",
        "read write",
    )
    assert line["syscallID"] is None and line["syscallName"] is None
    assert line["timestamp"] == "1700000001.500:43"
    assert METRIC + "{" not in generate_latest(registry).decode()  # no sample at all
    labels = {
        "node": "node-1",
        "namespace": "shop",
        "pod": "web-1",
        "container": "nginx",
        "executable": "",  # this record has no exe=
        "scontext": "system_u:system_r:container_t:s0:c1,c2",
        "tcontext": "system_u:object_r:var_t:s0",
    }
    assert registry.get_sample_value(AVC_METRIC, labels) == 1.0


def test_records_outside_pods_are_not_logged_unless_asked() -> None:
    enricher, _, written = make()
    record = parse(SECCOMP)
    assert record is not None
    assert enricher.enrich(record, None) is None
    assert enricher.enrich(record, "f" * 64) is None  # a container of no known pod
    assert written == []
    everything, registry, logged = make(include_unattributed=True)
    everything.enrich(record, None)
    assert json.loads(logged[0])["pod"] == ""
    labels = {"node": "node-1", "namespace": "", "pod": "", "container": ""}
    labels |= {"executable": "/bin/busybox", "syscall": "mkdir"}
    assert registry.get_sample_value(METRIC, labels) == 1.0


def test_metrics_are_exposed_with_exactly_the_go_operators_names_and_labels() -> None:
    """security_profiles_operator_{seccomp,selinux}_profile_audit_total of the Go operator
    v0.8.4 (internal/pkg/daemon/metrics/metrics.go): the same label names, the executable
    included."""
    enricher, registry, _ = make()
    for line in (SECCOMP, AVC.replace('comm="cat"', 'comm="cat" exe="/bin/cat"')):
        record = parse(line)
        assert record is not None
        enricher.enrich(record, WEB)
    exposition = generate_latest(registry).decode()
    assert (
        f'{METRIC}{{container="nginx",executable="/bin/busybox",namespace="shop",node="node-1",'
        'pod="web-1",syscall="mkdir"} 1.0' in exposition
    )
    assert (
        f'{AVC_METRIC}{{container="nginx",executable="/bin/cat",namespace="shop",node="node-1",'
        'pod="web-1",scontext="system_u:system_r:container_t:s0:c1,c2",'
        'tcontext="system_u:object_r:var_t:s0"} 1.0' in exposition
    )


def test_as_the_recorders_callback() -> None:
    enricher, _, written = make()

    def resolve(pid: int) -> Lookup:
        return Lookup(WEB) if pid == 7 else Lookup(None, Unknown.HOST)

    recorder = Recorder(resolve)
    recorder.consume([SECCOMP, AVC, SECCOMP.replace("pid=7", "pid=8")], each=enricher)
    assert [json.loads(line)["type"] for line in written] == ["seccomp", "selinux"]
    assert enricher.syscall_name(0xC000003E, 9999) == "syscall-9999"


@pytest.mark.parametrize("unusual", [False, True], ids=["whole-batch", "line-by-line"])
def test_the_recorders_hot_path_tells_the_same_lines_and_counts_as_enrich(unusual: bool) -> None:
    """Both hot paths: the whole batch at once, and line by line (a SECCOMP record whose fields
    are in an order the batch's regular expression does not read sends the batch there)."""
    web_pid, host_pid, gone_pid, stranger_pid = 7, 8, 9, 10
    stranger = "e" * 64  # a container of no known pod
    owners = {web_pid: Lookup(WEB), host_pid: Lookup(None, Unknown.HOST)}
    owners[gone_pid] = Lookup(None, Unknown.VANISHED)
    owners[stranger_pid] = Lookup(stranger)
    exe_hex = "2F7573722F62696E2F6D7920617070"  # "/usr/bin/my app": audit writes it in hex
    lines = [
        f"type=SECCOMP msg=audit(1700000000.{n % 1000:03d}:{100 + n}): auid=4294967295 uid=0 gid=0 "
        f'ses=4294967295 subj=unconfined pid={pid} comm="mkdir" exe={exe} sig=0 arch=c000003e '
        f"syscall={number} compat=0 ip=0x7f code=0x7ffc0000"
        for n, (pid, exe, number) in enumerate(
            [
                (web_pid, '"/bin/busybox"', 83),
                (web_pid, exe_hex, 0),
                (host_pid, '"/usr/sbin/cron"', 1),
                (gone_pid, '"/bin/mkdir"', 83),
                (stranger_pid, '"/bin/sh"', 59),
                (web_pid, '"/bin/busybox"', 83),
                (web_pid, '"/bin/busybox"', 999),  # a number the table does not name
            ]
        )
    ]
    # the same fields in another order: the full parse's path
    lines.append(
        "type=SECCOMP msg=audit(1700000001.000:200): pid=7 auid=0 uid=0 gid=0 ses=1 arch=c000003e "
        'comm="x" exe="/bin/x" sig=0 syscall=2 compat=0 ip=0x1 code=0x7ffc0000'
    )
    if not unusual:
        lines.pop()
    assert (scan_batch(lines) is None) == unusual
    lines.append(
        'type=AVC msg=audit(1700000001.001:201): avc:  denied  { read } for  pid=7 comm="x" '
        "scontext=system_u:system_r:container_t:s0 tcontext=system_u:object_r:etc_t:s0 "
        "tclass=file permissive=1"
    )
    for unattributed in (False, True):
        slow_lines: list[str] = []
        fast_lines: list[str] = []
        slow = LogEnricher(
            "n1",
            CollectorRegistry(),
            INDEX.get,
            slow_lines.append,
            include_unattributed=unattributed,
        )
        fast = LogEnricher(
            "n1",
            CollectorRegistry(),
            INDEX.get,
            fast_lines.append,
            include_unattributed=unattributed,
        )
        for line in lines:
            record = parse(line)
            assert record is not None
            slow.enrich(record, owners[record.pid].container_id)
        Recorder(owners.__getitem__).consume(lines, each=fast)
        assert fast_lines == slow_lines
        text_lines: list[str] = []
        by_text = LogEnricher(
            "n1",
            CollectorRegistry(),
            INDEX.get,
            text_lines.append,
            include_unattributed=unattributed,
        )
        text_recorder = Recorder(owners.__getitem__)
        text_recorder.consume_text("\n".join(lines), each=by_text)  # as the audit loop reads
        assert text_lines == slow_lines
        assert by_text.all_counts() == slow.all_counts()
        assert text_recorder.counts.lines == len(lines)
        assert fast.all_counts() == slow.all_counts()
        assert fast.avc_counts == slow.avc_counts
        web = ("n1", "shop", "web-1", "nginx")
        assert fast.all_counts()[(*web, "/usr/bin/my app", "read")] == 1  # hex exe, decoded
        # web: 4 SECCOMP (+1 in an unusual order), 1 AVC
        assert len(fast_lines) == (8 if unattributed else 5) + unusual


def test_a_pid_of_another_pod_in_a_later_batch_counts_and_records_under_each() -> None:
    """The hot path counts a batch by its records' fields and puts them under their pods when
    read: a pid that belongs to another container in a later batch (a reused pid) ends that."""
    db = "b" * 64
    index = {**INDEX, db: ContainerRef("shop", "db-1", "pg")}
    owners = {7: WEB}
    recorder = Recorder(lambda pid: Lookup(owners[pid]))
    written: list[str] = []
    enricher = LogEnricher("n1", CollectorRegistry(), index.get, written.append)
    web_mkdir = ("n1", "shop", "web-1", "nginx", "/bin/busybox", "mkdir")
    recorder.consume([SECCOMP], each=enricher)
    assert enricher.all_counts() == {web_mkdir: 1}  # read in the middle of an epoch
    recorder.consume([SECCOMP], each=enricher)
    owners[7] = db
    recorder.consume([SECCOMP.replace("syscall=83", "syscall=0"), SECCOMP], each=enricher)
    assert enricher.all_counts() == {
        web_mkdir: 2,
        ("n1", "shop", "db-1", "pg", "/bin/busybox", "read"): 1,
        ("n1", "shop", "db-1", "pg", "/bin/busybox", "mkdir"): 1,
    }
    assert [json.loads(line)["pod"] for line in written] == ["web-1", "web-1", "db-1", "db-1"]
    web, pg = recorder.seccomp_of(WEB), recorder.seccomp_of(db)
    assert web is not None and pg is not None
    assert (web.names, web.records) == (("mkdir",), 2)
    assert (pg.names, pg.records) == (("mkdir", "read"), 2)
    recorder.forget(db)
    assert recorder.container_ids() == {WEB}


@pytest.mark.parametrize("max_rests", [2, 32768], ids=["rests-forgotten", "rests-kept"])
def test_a_pids_lines_follow_its_pod_from_batch_to_batch(
    max_rests: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rest of a SECCOMP record's line is kept from batch to batch per fields as written:
    told again once its pid's pod is known, under the pod's new name, not at all once gone;
    the same lines and counts as record by record (:meth:`LogEnricher.enrich`)."""
    monkeypatch.setattr(enriching, "MAX_RESTS", max_rests)
    index: dict[str, ContainerRef] = {}
    owners = {7: Lookup(WEB), 8: Lookup(None, Unknown.HOST)}
    batch = "\n".join(
        [
            SECCOMP,
            SECCOMP.replace("syscall=83", "syscall=0"),
            SECCOMP.replace("pid=7", "pid=8"),
            AVC,
            SECCOMP.replace("syscall=83", "syscall=1"),
        ]
    )
    fast_lines: list[str] = []
    slow_lines: list[str] = []
    fast = LogEnricher("n1", CollectorRegistry(), index.get, fast_lines.append)
    slow = LogEnricher("n1", CollectorRegistry(), index.get, slow_lines.append)
    recorder = Recorder(owners.__getitem__)
    pods = [None, INDEX[WEB], ContainerRef("shop", "web-2", "nginx"), None, INDEX[WEB]]
    for pod in pods:
        index.pop(WEB, None)
        if pod is not None:
            index[WEB] = pod
        recorder.consume_text(batch, each=fast)
        for line in batch.split("\n"):
            record = parse(line)
            assert record is not None
            slow.enrich(record, owners[record.pid].container_id)
        assert fast_lines == slow_lines
    assert [json.loads(line)["pod"] for line in fast_lines] == ["web-1"] * 4 + ["web-2"] * 4 + [
        "web-1"
    ] * 4
    assert fast.all_counts() == slow.all_counts()
    assert fast.avc_counts == slow.avc_counts


def test_an_avc_record_the_batch_finds_but_cannot_read_is_no_line() -> None:
    """A line that names an AVC record but is not one (cut short, say) is left out, as line by
    line, and the lines around it are told."""
    enricher, _, written = make()
    recorder = Recorder(lambda pid: Lookup(WEB))
    broken = "type=AVC msg=audit(1700000001.5:44): avc:  denied  { read"
    told = recorder.consume_text("\n".join([SECCOMP, broken, AVC, broken]), each=enricher)
    assert told == 2
    assert [json.loads(line)["type"] for line in written] == ["seccomp", "selinux"]
    assert (recorder.counts.seccomp, recorder.counts.avc) == (1, 1)


def test_a_recorder_made_not_to_count_lines_counts_all_else() -> None:
    lines = [SECCOMP, "type=EOE msg=audit(1700000000.123:42): ", AVC]
    counted, uncounted = (
        Recorder(lambda pid: Lookup(WEB)),
        Recorder(lambda pid: Lookup(WEB), count_lines=False),
    )
    for recorder in (counted, uncounted):
        recorder.consume_text("\n".join(lines), each=make()[0])
        recorder.consume(lines)
    assert counted.counts.lines == 6 and uncounted.counts.lines == 0
    uncounted.counts.lines = counted.counts.lines
    assert uncounted.counts == counted.counts
