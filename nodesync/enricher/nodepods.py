"""The pods of this node, as the log enricher needs them: container id -> pod container.

A ``Watcher`` (:mod:`nodesync.nodeio.watching`) lists and watches this node's pods
(``requesting.PodSource``) into :class:`NodePods`, which keeps only what the
enricher reads, the container ids of each pod, and hands every pod to the
recording agent, which keeps the recorded ones until their profiles are made.

With ``enableMemoryOptimization`` the watch asks only for the pods labelled
``spo.x-k8s.io/enable-recording`` (:func:`selector`), so the other pods of the
node are never held; their records are then not attributed (nor enriched).

Lookups come from the log-following thread while events come from the watch
thread: the index is replaced whole, never changed in place, so a lookup reads
a consistent dict without a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from hooks.api.profilerecording import ENABLE_RECORDING_LABEL
from nodesync.enricher.containers import ContainerRef, container_index, pod_key


class Recording(Protocol):
    """The part of ``recording_agent.RecordingAgent`` the pod watch drives."""

    def observe(self, pod: Mapping[str, Any]) -> object: ...

    def deleted(self, pod: Mapping[str, Any]) -> object: ...

    def relist(self, pods: Iterable[Mapping[str, Any]]) -> object: ...


def selector(memory_optimization: bool) -> str:
    """The label selector of the pod watch: the recorded pods only, with the memory optimisation."""
    return ENABLE_RECORDING_LABEL if memory_optimization else ""


class NodePods:
    """The container index of the watched pods; a ``watching.Fed``."""

    def __init__(self, recording: Recording | None = None) -> None:
        self._recording = recording
        self._by_pod: dict[tuple[str, str], dict[str, ContainerRef]] = {}
        self._index: dict[str, ContainerRef] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()

    def lookup(self, container_id: str) -> ContainerRef | None:
        return self._index.get(container_id)

    def __len__(self) -> int:
        return len(self._by_pod)

    def _rebuild(self) -> None:
        index: dict[str, ContainerRef] = {}
        for containers in self._by_pod.values():
            index.update(containers)
        self._index = index

    def relist(self, pods: Iterable[Mapping[str, Any]]) -> None:
        listed = list(pods)
        # the recording first: once a container's records can be told (and the recorder's
        # state saved with them), the pod saved beside them must be the one naming the container
        if self._recording is not None:
            self._recording.relist(listed)
        with self._lock:
            self._by_pod = {pod_key(pod): container_index([pod]) for pod in listed}
            self._rebuild()
        self.ready.set()

    def event(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = pod_key(obj)
        if kind == "DELETED":
            # the pod's ids stay known until the recording is read out: its last records
            # may still be on their way through the audit log
            if self._recording is not None:
                self._recording.deleted(obj)
            with self._lock:
                self._by_pod.pop(key, None)
                self._rebuild()
            return
        if self._recording is not None:
            self._recording.observe(obj)  # first: see relist
        with self._lock:
            self._by_pod[key] = container_index([obj])
            self._rebuild()

    def tick(self) -> None:
        """Nothing waits for a retry here: a failed profile creation is logged."""

    def pending(self) -> bool:
        return False
