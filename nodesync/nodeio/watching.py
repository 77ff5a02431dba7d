"""List, then watch, the profile ConfigMaps of one kind (by label selector).

One ``Watcher`` per kind of profile: the seccomp ConfigMaps (``SELECTOR``)
and the SELinux ones (``nodesync.selinux.reporter.SELECTOR``) each feed a
``NodeAgent``; each watcher has its own ``Cluster`` (a watch
being read belongs to one connection). The cluster decides the scope: every
namespace, or the one it is restricted to.

List (paginated) and converge; watch from the list's resourceVersion with
bookmarks; when a watch ends on its timeout, watch again from the last
resourceVersion seen. When the resourceVersion expires (410) list again at
once; when the connection fails, list again after an exponential backoff with
jitter. While node statuses wait for a retry (a request failed), watches last
only ``retry_interval`` seconds, so that the retry comes soon.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hooks.api.configmaps import SECCOMP_KIND
from hooks.api.nodestatuslabels import PROFILE_KIND_LABEL
from nodesync.nodeio.cluster import ApiError, Expired
from nodesync.nodeio.logs import about

if TYPE_CHECKING:
    from hooks.api.base import Object

log = logging.getLogger(__name__)

SELECTOR = f"{PROFILE_KIND_LABEL}={SECCOMP_KIND}"


class Source(Protocol):
    """What a watcher lists and watches: a ``Cluster``'s ConfigMaps, or a node's pods
    (``requesting.PodSource``, which keeps the names)."""

    def list_configmaps(self, selector: str) -> tuple[list[Object], str]: ...

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Object]: ...


class Fed(Protocol):
    """What a watcher feeds: a ``NodeAgent``, or the log enricher's pod index."""

    def relist(self, configmaps: Iterable[Mapping[str, Any]]) -> object:
        """Converge to a fresh list of every ConfigMap of the selector."""
        ...

    def event(self, kind: str, obj: Mapping[str, Any]) -> None: ...

    def tick(self) -> None:
        """Called after every watch request: retry what failed."""
        ...

    def pending(self) -> bool:
        """Whether something waits for ``tick()`` (watches are then brief)."""
        ...


@dataclass
class Backoff:
    """Full-jitter exponential backoff: up to base * 2**n seconds, capped."""

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Watcher:
    def __init__(
        self,
        cluster: Source,
        agent: Fed,
        stop: threading.Event,
        *,
        selector: str = SELECTOR,
        timeout: int = 300,
        retry_interval: int = 10,
        backoff: Backoff | None = None,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self.cluster = cluster
        self.agent = agent
        self.stop = stop
        self.selector = selector
        self.timeout = timeout
        self.retry_interval = min(retry_interval, timeout)
        self.backoff = backoff or Backoff()
        self.wait = wait or stop.wait
        self.relists = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._list_and_watch()
            except Expired as error:
                log.info("watch expired (%s): listing again", error.message, extra=about("", ""))
            except ApiError as error:
                if self.stop.is_set():
                    return  # the watch was cut short to stop
                delay = self.backoff.next()
                log.warning(
                    "API server: %s; listing again in %.1fs",
                    error,
                    delay,
                    extra={**about("", ""), "selector": self.selector},
                )
                self.wait(delay)

    def _list_and_watch(self) -> None:
        items, version = self.cluster.list_configmaps(self.selector)
        self.relists += 1
        self.agent.relist(items)
        del items
        self.backoff.reset()
        while not self.stop.is_set():
            brief = self.agent.pending()
            timeout = self.retry_interval if brief else self.timeout
            for event in self.cluster.watch_configmaps(self.selector, version, timeout):
                kind = str(event.get("type"))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 0)
                    if code == 410:
                        raise Expired(str(obj.get("message") or "resource version expired"))
                    raise ApiError(code, str(obj.get("message") or "watch error"))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    self.agent.event(kind, obj)
                if self.stop.is_set():
                    return
                if not brief and self.agent.pending():
                    break  # a report failed: watch again briefly, then retry it
            self.agent.tick()
