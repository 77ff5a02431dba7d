"""The webhook's binding and recording tables, kept in memory from the objects it watches.

The webhook Deployment lists and watches ProfileBindings, ProfileRecordings,
SeccompProfiles and SelinuxProfiles (``hooks.command.webhook`` wires the
watches) and feeds every list and event here. The tables are the ones the
admission functions read (``hooks.cluster.binding.table``,
``hooks.cluster.recording.table``), built by the same pure ``resolve``
functions, namespace by namespace: a binding applies only to pods of its own
namespace and names a profile of that namespace, and a recording selects pods
of its namespace, so an event in one namespace changes that namespace's part
of the tables alone.

Cost. ``relist`` and ``event`` only store the object (a binding or recording
parsed once, as it arrives; a profile reduced to the fields the tables read)
and mark its namespace; ``rebuild`` resolves the marked
namespaces again and publishes new tables, which admission reads without a
lock (a published table is never changed). The publisher thread (``publish_forever``)
rebuilds at once when something is marked and then waits ``interval`` seconds,
so a burst of events costs one rebuild per namespace per interval, whatever its
size, and a lone event takes effect within milliseconds. An event that changes nothing
the tables read (most of a profile's: its conditions, its node counts) marks nothing.

Measured (bench/bench_binding_webhook.py): an event in a namespace of 1,000
bindings costs one resolution of that namespace, about 20 ms of CPU, the same with
1,000 or 5,000 bindings in the cluster; one in a namespace of 10, 0.1 ms. A burst
of 1,000 events there costs two rebuilds (0.07 ms of CPU per event) and is in the
table 80 ms after the last one. Admission waits meanwhile (the rebuild runs in the
worker's event loop): up to one rebuild, at most ten times a second.

Ready: once every kind was listed once and the tables were built from those
lists; before that, admission answers with a warning (``Loaded.loaded`` is
false), as it did while the table file was missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hooks.api import profilebinding as binding_api
from hooks.api import profilerecording as recording_api
from hooks.api import seccompprofile as seccomp_api
from hooks.api import selinuxprofile as selinux_api
from hooks.api.kinds import Kind
from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster.binding import table as binding_table
from hooks.cluster.recording import table as recording_table
from hooks.logs import about

log = logging.getLogger(__name__)

BINDINGS = binding_api.KIND
RECORDINGS = recording_api.KIND
SECCOMP_PROFILES = seccomp_api.KIND
SELINUX_PROFILES = selinux_api.KIND
WATCHED: tuple[Kind, ...] = (BINDINGS, RECORDINGS, SECCOMP_PROFILES, SELINUX_PROFILES)
"""What the webhook lists and watches, and all its ServiceAccount may read."""
INTERVAL = 0.1
"""Seconds between two rebuilds: events that arrive meanwhile are resolved together."""

T = TypeVar("T")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A table, and whether it was built from a full list of every watched kind."""

    table: T
    loaded: bool


Objects = dict[str, dict[str, Any]]
"""namespace -> name -> what is kept of an object of one kind (``_kept``)."""


def _kept(kind: Kind, obj: Mapping[str, Any]) -> Any:
    """What the tables read of ``obj``: a binding or recording parsed (None when invalid, logged
    once here); a profile's name, deletion and status (its spec can be large and is never
    read)."""
    if kind is BINDINGS:
        return binding_table.parse(dict(obj))
    if kind is RECORDINGS:
        return recording_table.usable(dict(obj))
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kept = {k: meta[k] for k in ("name", "namespace", "deletionTimestamp") if k in meta}
    status = obj.get("status")
    out: dict[str, Any] = {"metadata": kept}
    if isinstance(status, dict):
        out["status"] = {
            k: status[k] for k in ("status", "localhostProfile", "usage") if k in status
        }
    return out


def _where(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class WatchedTables:
    """The objects of the watched kinds and the tables built from them; safe across threads."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._marked = threading.Condition(self._lock)
        self._objects: dict[str, Objects] = {kind.kind: {} for kind in WATCHED}
        self._listed: set[str] = set()
        self._dirty: set[str] = set()
        self._bindings: dict[str, dict[str, tuple[binding_table.Entry, ...]]] = {}
        self._recordings: dict[str, tuple[recording_table.Recording, ...]] = {}
        self._binding = Loaded(binding_table.EMPTY, loaded=False)
        self._recording = Loaded(recording_table.EMPTY, loaded=False)
        self.rebuilds = 0
        self.rebuilt_namespaces = 0

    # -- what admission reads -------------------------------------------------------------------

    def bindings(self) -> Loaded[binding_table.BindingTable]:
        return self._binding

    def recordings(self) -> Loaded[recording_table.RecordingTable]:
        return self._recording

    def ready(self) -> bool:
        return self._binding.loaded

    # -- what the watches feed ------------------------------------------------------------------

    def relist(self, kind: Kind, items: Iterable[Mapping[str, Any]]) -> None:
        """Replace every object of ``kind`` with a fresh list; mark the namespaces that had or
        have one."""
        fresh: Objects = {}
        for obj in items:
            namespace, name = _where(obj)
            fresh.setdefault(namespace, {})[name] = _kept(kind, obj)
        with self._lock:
            before = self._objects[kind.kind]
            self._objects[kind.kind] = fresh
            self._listed.add(kind.kind)
            self._dirty.update(before, fresh)
            self._marked.notify_all()

    def event(self, kind: Kind, event_type: str, obj: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of ``kind``."""
        namespace, name = _where(obj)
        kept = None if event_type == "DELETED" else _kept(kind, obj)
        with self._lock:
            objects = self._objects[kind.kind]
            if event_type == "DELETED":
                found = objects.get(namespace)
                if found is not None:
                    found.pop(name, None)
                    if not found:
                        del objects[namespace]
            else:
                found = objects.setdefault(namespace, {})
                if name in found and found[name] == kept:
                    return  # nothing the tables read changed (a profile's conditions, say)
                found[name] = kept
            self._dirty.add(namespace)
            self._marked.notify_all()

    # -- building the tables --------------------------------------------------------------------

    def _of(self, kind: Kind, namespace: str) -> list[Any]:
        found = (self._objects[kind.kind].get(namespace) or {}).values()
        return [kept for kept in found if kept is not None]

    def rebuild(self) -> int:
        """Resolve the marked namespaces again and publish; the number of namespaces resolved.

        Nothing is published before every kind was listed once."""
        with self._lock:
            if len(self._listed) < len(WATCHED) or (self._binding.loaded and not self._dirty):
                return 0
            dirty, self._dirty = self._dirty, set()
            inputs = {ns: tuple(self._of(kind, ns) for kind in WATCHED) for ns in dirty}
            logging_profile = (
                self._objects[SECCOMP_PROFILES.kind].get(OPERATOR_NAMESPACE) or {}
            ).get(recording_api.LOG_ENRICHER_PROFILE)
        try:
            for ns, (bindings, recordings, seccomp, selinux) in inputs.items():
                images = binding_table.resolve_parsed(bindings, seccomp, selinux).of(ns)
                if images:
                    self._bindings[ns] = images
                else:
                    self._bindings.pop(ns, None)
                recorded = recording_table.resolve_parsed(recordings, ()).of(ns)
                if recorded:
                    self._recordings[ns] = recorded
                else:
                    self._recordings.pop(ns, None)
        except Exception:
            with self._lock:  # resolved again next time
                self._dirty.update(dirty)
            raise
        enricher = recording_table.logging_profile([logging_profile] if logging_profile else [])
        self._binding = Loaded(binding_table.BindingTable(dict(self._bindings)), loaded=True)
        self._recording = Loaded(
            recording_table.RecordingTable(dict(self._recordings), enricher), loaded=True
        )
        self.rebuilds += 1
        self.rebuilt_namespaces += len(inputs)
        if self.rebuilds == 1:
            log.info(
                "webhook tables loaded: %d bindings, %d recordings",
                self._binding.table.count(),
                self._recording.table.count(),
                extra=about(count=self._binding.table.count()),
            )
        return len(inputs)

    def wait_marked(self, stop: threading.Event, timeout: float) -> bool:
        """Wait until every kind was listed and something is marked (or nothing was published
        yet: an empty cluster has tables too), ``stop`` is set, or ``timeout`` passes; whether
        there is something to rebuild."""
        with self._lock:
            return (
                self._marked.wait_for(
                    lambda: (
                        stop.is_set()
                        or (
                            len(self._listed) == len(WATCHED)
                            and (bool(self._dirty) or not self._binding.loaded)
                        )
                    ),
                    timeout,
                )
                and not stop.is_set()
            )

    def publish_forever(self, stop: threading.Event) -> None:
        """Rebuild whenever something is marked, at most once per ``interval``, until ``stop``."""
        while not stop.is_set():
            if not self.wait_marked(stop, timeout=1.0):
                continue
            started = time.monotonic()
            try:
                self.rebuild()
            except Exception:  # a bug must not end the webhook's tables for good
                log.exception("rebuilding the webhook tables failed", extra=about())
            stop.wait(max(0.0, self.interval - (time.monotonic() - started)))


class KindFeed:
    """What a watcher of one kind feeds (``nodesync.nodeio.watching.Fed``): the tables."""

    def __init__(self, tables: WatchedTables, kind: Kind) -> None:
        self.tables = tables
        self.kind = kind

    def relist(self, configmaps: Iterable[Mapping[str, Any]]) -> object:
        self.tables.relist(self.kind, configmaps)
        return None

    def event(self, kind: str, obj: Mapping[str, Any]) -> None:
        self.tables.event(self.kind, kind, obj)

    def tick(self) -> None:
        return None

    def pending(self) -> bool:
        return False
