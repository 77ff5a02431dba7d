"""docs/metrics.md lists every metric the programs expose, with its type and labels, and
nothing else: the table is read and compared with what each registry exposes once every
metric has a sample."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from hooks.cluster.metrics import HookMetrics
from nodesync.enricher.auditlog import parse
from nodesync.enricher.containers import ContainerRef
from nodesync.enricher.enriching import LogEnricher
from nodesync.nodeio.metrics import SELINUX, Metrics

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>counter|histogram) \| (?P<labels>[^|]+) \|")
SECCOMP = (
    "type=SECCOMP msg=audit(1700000000.123:42): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'pid=7 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 '
    "compat=0 ip=0x1 code=0x7ffc0000"
)
AVC = (
    'type=AVC msg=audit(1700000001.5:43): avc:  denied  { read } for  pid=7 comm="cat" '
    'exe="/bin/cat" scontext=system_u:system_r:container_t:s0 '
    "tcontext=system_u:object_r:var_t:s0 tclass=file permissive=0"
)


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    found = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            labels = frozenset(re.findall(r"`([a-z_]+)`", match["labels"]))
            found[match["name"]] = (match["type"], labels)
    return found


def exposed(metrics: list[Metric]) -> dict[str, tuple[str, frozenset[str]]]:
    found = {}
    for family in metrics:
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        found[name] = (family.type, frozenset(labels))
    return found


def every_metric() -> list[Metric]:
    node = Metrics()
    for kind in ("seccomp", SELINUX):
        node.updated(kind=kind)
        node.error("Reason", kind=kind)
    node.reconciled("seccompprofile", 0.1, failed=True)
    registry = CollectorRegistry()
    enricher = LogEnricher("n", registry, {"c": ContainerRef("ns", "p", "c")}.get, lambda _: None)
    for line in (SECCOMP, AVC):
        record = parse(line)
        assert record is not None
        enricher.enrich(record, "c")
    hooks = HookMetrics()
    hooks.observe("spod-sync", 500, 0.1)
    return [
        *node.registry.collect(),
        *node.controllers.collect(),
        *registry.collect(),
        *hooks.registry.collect(),
    ]


def test_the_table_lists_every_metric_with_its_type_and_labels() -> None:
    table = documented()
    assert table, "no table found in docs/metrics.md"
    assert exposed(every_metric()) == table
