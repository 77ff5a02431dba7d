"""The log enricher: one JSON line per record of a pod's container, and the audit counter."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from nodesync.enricher.auditlog import parse
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
        "syscall": "mkdir",
    }
    assert registry.get_sample_value(METRIC, labels) == 1.0
    enricher.enrich(record, WEB)
    assert registry.get_sample_value(METRIC, labels) == 2.0


def test_avc_line_adds_the_selinux_fields_and_is_not_counted_as_seccomp() -> None:
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
    labels = {"node": "node-1", "namespace": "", "pod": "", "container": "", "syscall": "mkdir"}
    assert registry.get_sample_value(METRIC, labels) == 1.0


def test_metric_is_exposed_with_exactly_its_name_and_labels() -> None:
    enricher, registry, _ = make()
    record = parse(SECCOMP)
    assert record is not None
    enricher.enrich(record, WEB)
    exposition = generate_latest(registry).decode()
    assert (
        f'{METRIC}{{container="nginx",namespace="shop",node="node-1",pod="web-1",'
        'syscall="mkdir"} 1.0' in exposition
    )


def test_as_the_recorders_callback() -> None:
    enricher, _, written = make()

    def resolve(pid: int) -> Lookup:
        return Lookup(WEB) if pid == 7 else Lookup(None, Unknown.HOST)

    recorder = Recorder(resolve)
    recorder.consume([SECCOMP, AVC, SECCOMP.replace("pid=7", "pid=8")], each=enricher)
    assert [json.loads(line)["type"] for line in written] == ["seccomp", "selinux"]
    assert enricher.syscall_name(0xC000003E, 9999) == "syscall-9999"
