"""Pod events from the watch thread, replayed in the audit-log thread a little later."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodesync.enricher.recordingagent import RecordingAgent


class Deferred:
    """Pod events from the watch thread, replayed in the audit-log thread ``delay`` seconds
    later."""

    def __init__(self, delay: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = delay
        self._clock = clock
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def later(self, call: Callable[[], object], delay: float | None = None) -> None:
        """Run ``call`` in ``delay`` seconds (default: this queue's)."""
        wait = self.delay if delay is None else delay
        with self._lock:
            heapq.heappush(self._queue, (self._clock() + wait, next(self._order), call))

    def run_due(self) -> int:
        """Run every call whose time has come, in order; how many ran."""
        ran = 0
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > self._clock():
                    return ran
                _, _, call = heapq.heappop(self._queue)
            call()
            ran += 1


class DeferredRecording:
    """The recording agent seen from the pod watch.

    What the agent knows changes at once (a recorded pod is remembered, and so
    saved, as soon as it is seen; the pods a fresh list lacks are decided gone
    against what was known at that moment), while finishing a pod, which reads
    what the recorder has, waits ``deferred``'s delay for the pod's last records.
    """

    def __init__(self, agent: RecordingAgent, deferred: Deferred) -> None:
        self.agent = agent
        self.deferred = deferred

    def observe(self, pod: Mapping[str, Any]) -> None:
        self.agent.remember(pod)
        # later, only to finish it: this state must not replace a newer one remembered since
        # (the saved state would then lack the container ids the newer one names)
        self.deferred.later(lambda: self.agent.settle(pod))

    def deleted(self, pod: Mapping[str, Any]) -> None:
        self.deferred.later(lambda: self.agent.deleted(pod))

    def relist(self, pods: Iterable[Mapping[str, Any]]) -> None:
        listed = list(pods)
        gone = self.agent.gone(listed)  # against what is known now, not when the list's turn comes
        for pod in listed:
            self.observe(pod)
        for pod in gone:
            self.deleted(pod)
