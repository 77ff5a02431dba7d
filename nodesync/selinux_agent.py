"""The SELinux side of the node agent: same shape as ``agent.Agent`` (relist, event, tick).

Wiring (kept out of the seccomp agent's files): the watcher lists and watches
ConfigMaps with ``SELECTOR`` and hands them to ``SelinuxAgent``; ``tick()``
is called on the watcher's periodic tick and reports the policies whose
installation finished since.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from hooks.api.nodestatus import NODE_NAME_LABEL, PROFILE_KIND_LABEL, node_label
from nodesync.logs import about
from nodesync.outcomes import Outcome
from nodesync.reporting import NodeStatusReporter, StatusSink
from nodesync.reports import report_of
from nodesync.selinux_policies import SELINUX_KINDS, is_selinux_configmap
from nodesync.selinux_sync import SelinuxSync

log = logging.getLogger(__name__)

SELECTOR = f"{PROFILE_KIND_LABEL} in ({','.join(SELINUX_KINDS)})"


def node_selector(node: str) -> str:
    return f"{NODE_NAME_LABEL}={node_label(node)},{SELECTOR}"


class SelinuxStatusReporter(NodeStatusReporter):
    """The node status reporter, primed from (and pruning) the SELinux kinds' statuses only."""

    def prime(self) -> None:
        items = self.cluster.list_node_statuses(node_selector(self.node))
        self.known = {
            (str(item["metadata"]["namespace"]), str(item["metadata"]["name"])): report_of(item)
            for item in items
        }


class SelinuxAgent:
    def __init__(self, sync: SelinuxSync, sink: StatusSink) -> None:
        self.sync = sync
        self.sink = sink
        self.ready = threading.Event()

    def relist(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        outcomes = self.sync.converge(configmaps)
        self.sink.sync(outcomes)
        self.ready.set()
        log.info(
            "converged %d SELinux policies, %d written",
            len(outcomes),
            sum(1 for outcome in outcomes if outcome.changed),
            extra=about("", ""),
        )
        return outcomes

    def event(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED") and is_selinux_configmap(obj):
            self.sink.report(self.sync.upsert(obj))
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            outcome = self.sync.delete(obj)
            if outcome is not None:
                self.sink.forget(outcome)

    def tick(self) -> None:
        for outcome in self.sync.poll():
            self.sink.report(outcome)
        self.sink.retry()
