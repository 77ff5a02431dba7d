"""The node agent: one loop for every kind of profile, fed by a watcher (or a folder).

An ``Installer`` knows one kind (the seccomp files, the SELinux policies); the
``NodeAgent`` feeds it lists and watch events and hands what happened to a
``StatusSink``. A lock serialises the watcher's thread and the poll loop's.

With ``metrics``, every list and every event handled is one reconcile of the
agent's ``controller`` (``controller_runtime_reconcile_*`` on ``/metrics``): an error
when an outcome is an error or the pass raised.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from hooks.api.profilestate import ProfileState
from nodesync.nodeio.logs import about
from nodesync.nodeio.metrics import Metrics
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.reporting import StatusSink

log = logging.getLogger(__name__)


class Installer(Protocol):
    """What the agent asks of one kind of profile on this node."""

    what: str  # how log lines count them: "profiles", "SELinux policies"

    def accepts(self, configmap: Mapping[str, Any]) -> bool:
        """Whether the ConfigMap is one of this kind's (else an event of it is a deletion)."""
        ...

    def converge(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        """Bring the node in line with a fresh list of every ConfigMap of this kind."""
        ...

    def upsert(self, configmap: Mapping[str, Any]) -> Outcome: ...

    def last(self, configmap: Mapping[str, Any]) -> Outcome | None:
        """The outcome last reported for this ConfigMap, if any."""
        ...

    def delete(self, configmap: Mapping[str, Any]) -> Outcome | None: ...

    def needs_poll(self) -> bool:
        """Whether installations started earlier may still finish (``poll()`` has news)."""
        ...

    def poll(self) -> list[Outcome]:
        """The outcomes that changed since they were last reported."""
        ...


class _Pass:
    """One reconcile pass being timed: ``failed`` is set when it went wrong."""

    failed = False


class NodeAgent:
    def __init__(
        self,
        installer: Installer,
        sink: StatusSink,
        *,
        metrics: Metrics | None = None,
        controller: str = "",
    ) -> None:
        self.installer = installer
        self.sink = sink
        self.metrics = metrics
        self.controller = controller
        self.ready = threading.Event()  # set after the first convergence (/readyz)
        self.lock = threading.RLock()

    @contextlib.contextmanager
    def _reconcile(self) -> Iterator[_Pass]:
        one = _Pass()
        started = time.perf_counter()
        try:
            yield one
        except BaseException:
            one.failed = True
            raise
        finally:
            if self.metrics is not None:
                elapsed = time.perf_counter() - started
                self.metrics.reconciled(self.controller, elapsed, failed=one.failed)

    def relist(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        """Converge to a fresh list, then bring the node statuses in line."""
        with self.lock, self._reconcile() as one:
            outcomes = self.installer.converge(configmaps)
            self.sink.sync(outcomes)
            one.failed = any(outcome.state is ProfileState.ERROR for outcome in outcomes)
        self.ready.set()
        changed = sum(1 for outcome in outcomes if outcome.changed)
        log.info(
            "converged %d %s, %d written",
            len(outcomes),
            self.installer.what,
            changed,
            extra=about("", ""),
        )
        return outcomes

    def event(self, kind: str, obj: Mapping[str, Any]) -> None:
        with self.lock, self._reconcile() as one:
            if kind in ("ADDED", "MODIFIED") and self.installer.accepts(obj):
                before = self.installer.last(obj)
                outcome = self.installer.upsert(obj)
                if outcome.owner is None and before is not None and before.owner is not None:
                    self.sink.forget(before)  # no longer its profile's ConfigMap (orphaned)
                self.sink.report(outcome)
                one.failed = outcome.state is ProfileState.ERROR
            elif kind in ("ADDED", "MODIFIED", "DELETED"):
                last = self.installer.delete(obj)
                if last is not None:
                    self.sink.forget(last)

    def poll(self) -> None:
        """Report the installations that finished since (nothing to ask: no request)."""
        with self.lock:
            if self.installer.needs_poll():
                for outcome in self.installer.poll():
                    self.sink.report(outcome)

    def tick(self) -> None:
        """Called after every watch request: report what finished, retry what failed."""
        with self.lock:
            for outcome in self.installer.poll():
                self.sink.report(outcome)
            self.sink.retry()

    def pending(self) -> bool:
        """Whether reports failed and wait for ``tick()`` (the watcher then ticks sooner)."""
        with self.lock:
            return self.sink.waiting()


def poll_loop(agent: NodeAgent, stop: threading.Event, interval: float) -> None:
    """``agent.poll()`` every ``interval`` seconds until ``stop`` is set."""
    while not stop.wait(interval):
        agent.poll()
