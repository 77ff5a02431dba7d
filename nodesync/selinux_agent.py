"""The SELinux side of the node agent: same shape as ``agent.Agent`` (relist, event, tick, pending).

Wiring (``command.run``): a second ``watching.Watcher`` lists and watches
ConfigMaps with ``SELECTOR`` and hands them to ``SelinuxAgent``; the watcher
calls ``tick()`` after every watch request (retrying failed reports), and
``poll_loop`` calls ``poll()`` every few seconds from its own thread, so that a
policy selinuxd installs while the watch is idle is reported at once, not when
the watch ends. A lock serialises the two threads.
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
        self.lock = threading.RLock()

    def relist(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        with self.lock:
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
        with self.lock:
            if kind in ("ADDED", "MODIFIED") and is_selinux_configmap(obj):
                before = self.sync.last(obj)
                outcome = self.sync.upsert(obj)
                if outcome.owner is None and before is not None and before.owner is not None:
                    self.sink.forget(before)  # no longer its profile's ConfigMap (orphaned)
                self.sink.report(outcome)
            elif kind in ("ADDED", "MODIFIED", "DELETED"):
                last = self.sync.delete(obj)
                if last is not None:
                    self.sink.forget(last)

    def poll(self) -> None:
        """Report the policies whose installation finished since (nothing to ask: no request)."""
        with self.lock:
            if self.sync.needs_poll():
                for outcome in self.sync.poll():
                    self.sink.report(outcome)

    def tick(self) -> None:
        with self.lock:
            for outcome in self.sync.poll():
                self.sink.report(outcome)
            self.sink.retry()

    def pending(self) -> bool:
        """Whether reports failed and wait for ``tick()`` (the watcher then ticks sooner)."""
        with self.lock:
            return bool(getattr(self.sink, "pending", None))


def poll_loop(agent: SelinuxAgent, stop: threading.Event, interval: float) -> None:
    """``agent.poll()`` every ``interval`` seconds until ``stop`` is set."""
    while not stop.wait(interval):
        agent.poll()
