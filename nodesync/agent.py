"""The node agent: feeds ConfigMap lists and watch events to the materialiser and the reporter."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from nodesync.logs import about
from nodesync.materialising import Materialiser
from nodesync.outcomes import Outcome
from nodesync.profiles import is_seccomp_configmap
from nodesync.reporting import StatusSink

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, materialiser: Materialiser, sink: StatusSink) -> None:
        self.materialiser = materialiser
        self.sink = sink
        self.ready = threading.Event()  # set after the first convergence (/readyz)

    def relist(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        """Converge the whole tree to a fresh list, then bring the node statuses in line."""
        outcomes = self.materialiser.converge(configmaps)
        self.sink.sync(outcomes)
        self.ready.set()
        changed = sum(1 for outcome in outcomes if outcome.changed)
        log.info("converged %d profiles, %d written", len(outcomes), changed, extra=about("", ""))
        return outcomes

    def event(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED") and is_seccomp_configmap(obj):
            before = self.materialiser.last(obj)
            outcome = self.materialiser.upsert(obj)
            if outcome.owner is None and before is not None and before.owner is not None:
                self.sink.forget(before)  # no longer its profile's ConfigMap (orphaned)
            self.sink.report(outcome)
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            last = self.materialiser.delete(obj)
            if last is not None:
                self.sink.forget(last)

    def tick(self) -> None:
        self.sink.retry()

    def pending(self) -> bool:
        """Whether reports failed and wait for ``tick()`` (the watcher then ticks sooner)."""
        return bool(getattr(self.sink, "pending", None))
