"""Metacontroller as a background loop for the tests: watch-driven, like its informers.

The public API, for any test that needs Metacontroller running (the e2e tests here, and the
real-node tests, which have their own garbage collector)::

    loop = start(plane, hooks_base)             # every controller of metacontroller/base
    loop = start(plane, hooks_base, "seccompprofile-controller", workers=2)
    plane.apply(profile)
    loop.wait_idle()          # every queue empty, nothing syncing, for a quiet moment
    ... assert on the cluster (with a deadline: events may still be travelling) ...
    loop.raise_errors(ns)     # a sync Metacontroller would retry failed: fail the test
    loop.stop()               # or: with start(...) as loop: ...

- :func:`start` ``(plane, hooks_base, *controllers, workers=5, context=None,
  garbage_collector=None)``: a running :class:`Metacontroller` acting as Metacontroller's
  ServiceAccount (``api_for(plane)``); ``controllers`` are names of the install's
  controllers or CompositeController/DecoratorController manifests (none: all of
  :func:`controllers`); ``hooks_base`` replaces the scheme and host of every hook URL
  (there is no cluster DNS), ``context`` is the TLS context to call it with;
  ``garbage_collector`` a :class:`~tests.helpers.stand_ins.GarbageCollectorStandIn` run every
  ``gc_interval`` seconds, for a control plane without kube-controller-manager.
- :class:`Metacontroller` ``(api, hooks_base, manifests, ...)``: the same with a client of
  one's own; ``start()`` (once), ``stop()``, a context manager; ``wait_idle(timeout,
  quiet)``, ``idle()``, ``raise_errors(namespace)``, ``sync_count(controller, key)``,
  ``hooks_of(controller)`` (calls and request bytes per hook and parent, and the request
  bodies when ``keep_requests`` is set), ``errors`` (the last error of each failing parent).
- :func:`controllers` ``(*names)``: the install's controller manifests.

Each controller gets ``workers`` threads (Metacontroller's ``--workers``, default 5) and a
rate-limited work queue of parent keys; the syncs are those of ``metacontroller_step``,
reading from the informer caches as Metacontroller's listers do.

What triggers a sync, from Metacontroller's source:

- ``pkg/controller/composite/controller.go``: every add, update (all of them unless
  ``parentResource.ignoreStatusChanges``) and delete of a parent (``enqueueParentObject``:
  only parents that match the label selector or carry the finalizer), every
  ``resyncPeriodSeconds`` for every parent; a child's add/update/delete enqueues the parent
  its controller reference resolves to (same group, kind, name and uid; ``onChildAdd``,
  ``resolveControllerRef``), updates with an unchanged resourceVersion ignored; an orphan
  child enqueues every parent of its namespace whose selector matches it
  (``findPotentialParents``); a ``resyncAfterSeconds`` answer enqueues after that delay; a
  failed sync is retried with client-go's per-item exponential backoff (5 ms doubling, at
  most 1000 s; ``workqueue.DefaultTypedControllerRateLimiter``), a 429's ``Retry-After`` after
  that delay.
- ``pkg/controller/common/customize/manager.go``: an informer per related resource, made
  when a customize answer first names it; every add, update (new resourceVersion) and
  delete of a related object enqueues every parent whose customize answer (cached per uid and
  generation, asked for when missing) has a rule matching the old or the new object
  (``findRelatedParents``, ``matchesRelatedRule``).
- ``pkg/controller/decorator/controller.go``: the same for targets and attachments, with no
  orphan adoption; the queue key is ``apiVersion:kind:namespace:name``.

Not emulated: leader election, the ControllerRevisions of rolling updates (no controller of
this project uses them), client rate limits (``--client-go-qps``), the informers' periodic
relist. A related informer is waited for until synced instead of failing the sync with
``ErrRelatedInformerNotSynced`` and retrying.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.helpers.controlplane import ControlPlane
from tests.helpers.kubeapi import ApiError, KubeApi, Object, Resource, Watch
from tests.helpers.metacontroller_common import (
    SyncError,
    api_for,
    controller_ref,
    deleting,
    selector_matches,
    uniform_key,
)
from tests.helpers.metacontroller_step import CompositeController, DecoratorController
from tests.helpers.stand_ins import GarbageCollectorStandIn

log = logging.getLogger("metacontroller-emulation")
REPO = Path(__file__).resolve().parent.parent.parent
Handler = Callable[[str, Object | None, Object], None]
"""``(event, old, new)``: event ``add``, ``update`` or ``delete`` (``new`` is the last state)."""


def controllers(*names: str, folder: Path = REPO / "metacontroller" / "base") -> list[Object]:
    """The CompositeController and DecoratorController manifests of ``folder`` (those named
    ``names``, in that order, when given)."""
    found: dict[str, Object] = {}
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in (
                "CompositeController",
                "DecoratorController",
            ):
                found[str(doc["metadata"]["name"])] = doc
    if not names:
        return list(found.values())
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"no controller {missing} in {folder}")
    return [found[name] for name in names]


# -- informers ----------------------------------------------------------------------------------


class Informer:
    """A LIST then WATCH of every object of one resource, its cache, and its handlers.

    Handlers run on the informer's thread, in order, as client-go's shared informer runs
    them: first an ``add`` for every listed object, then one call per watch event. A watch
    that ends is resumed from the last resourceVersion; a 410 Gone (or any error) relists
    and tells the handlers what changed meanwhile."""

    def __init__(self, api: KubeApi, resource: Resource) -> None:
        self.api = api
        self.resource = resource
        self.handlers: list[Handler] = []
        self.cache: dict[tuple[str, str], Object] = {}
        self.lock = threading.RLock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{resource.plural}", daemon=True
        )

    def add_handler(self, handler: Handler) -> None:
        """Adds a handler; like client-go, it is told of every object already cached."""
        with self.lock:
            self.handlers.append(handler)
            existing = list(self.cache.values())
        for obj in existing:
            handler("add", None, obj)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        self._thread.join(timeout=10)

    @staticmethod
    def _key(obj: Object) -> tuple[str, str]:
        meta = obj["metadata"]
        return str(meta.get("namespace") or ""), str(meta["name"])

    def get(self, namespace: str | None, name: str) -> Object | None:
        with self.lock:
            return self.cache.get((namespace or "", name))

    def list(
        self, namespace: str | None = None, selector: dict[str, Any] | None = None
    ) -> list[Object]:
        with self.lock:
            objects = list(self.cache.values())
        return [
            o
            for o in objects
            if (namespace is None or o["metadata"].get("namespace") == namespace)
            and selector_matches(selector, o["metadata"].get("labels"))
        ]

    def _tell(self, event: str, old: Object | None, new: Object) -> None:
        with self.lock:
            handlers = list(self.handlers)
        for handler in handlers:
            try:
                handler(event, old, new)
            except Exception:  # a handler's bug must not stop the informer
                log.exception("handler of %s failed on %s", self.resource.plural, event)

    def _relist(self) -> str:
        items, version = self.api.list(self.resource)
        fresh = {self._key(o): o for o in items}
        with self.lock:
            old = self.cache
            self.cache = fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._tell("add", None, obj)
            elif before["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._tell("update", before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._tell("delete", obj, obj)
        return version

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist()
                    self.synced.set()
                watch = self.api.watch(self.resource, version)
                self._watch = watch
                if self._stop.is_set():
                    watch.close()
                    return
                for kind, obj in watch:
                    if kind == "BOOKMARK":
                        version = obj["metadata"].get("resourceVersion") or version
                        continue
                    if kind == "ERROR":
                        version = ""  # 410 Gone or worse: relist
                        break
                    obj.setdefault("apiVersion", self.resource.api_version)
                    obj.setdefault("kind", self.resource.kind)
                    version = obj["metadata"].get("resourceVersion") or version
                    key = self._key(obj)
                    with self.lock:
                        before = self.cache.get(key)
                        if kind == "DELETED":
                            self.cache.pop(key, None)
                        else:
                            self.cache[key] = obj
                    if kind == "ADDED":
                        self._tell("add", None, obj) if before is None else self._tell(
                            "update", before, obj
                        )
                    elif kind == "MODIFIED":
                        self._tell("update", before, obj) if before is not None else self._tell(
                            "add", None, obj
                        )
                    elif kind == "DELETED":
                        self._tell("delete", before, obj)
                watch.close()
            except (ApiError, OSError, ValueError) as error:
                if self._stop.is_set():
                    return
                if isinstance(error, ApiError) and error.gone:
                    version = ""
                log.debug("watch of %s ended: %s", self.resource.plural, error)
                self._stop.wait(0.2)
                if not isinstance(error, ApiError):
                    version = ""


class Informers:
    """One informer per resource, shared by every controller (``SharedInformerFactory``)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.by_resource: dict[tuple[str, str], Informer] = {}
        self.lock = threading.Lock()
        self.started = False

    def get(self, resource: Resource, *, wait: bool = True) -> Informer:
        with self.lock:
            informer = self.by_resource.get((resource.api_version, resource.plural))
            if informer is None:
                informer = Informer(self.api, resource)
                self.by_resource[(resource.api_version, resource.plural)] = informer
                if self.started:
                    informer.start()
        if wait and self.started and not informer.synced.wait(timeout=60):
            raise SyncError(f"the informer of {resource.plural} did not sync")
        return informer

    def start(self) -> None:
        with self.lock:
            self.started = True
            informers = list(self.by_resource.values())
        for informer in informers:
            informer.start()
        for informer in informers:
            informer.synced.wait(timeout=60)

    def stop(self) -> None:
        with self.lock:
            informers = list(self.by_resource.values())
        for informer in informers:
            informer.stop()


class CacheReader:
    """A sync's reads from the informer caches (Metacontroller's listers)."""

    def __init__(self, informers: Informers) -> None:
        self.informers = informers

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        return self.informers.get(resource).get(namespace if resource.namespaced else None, name)

    def list(
        self, resource: Resource, namespace: str | None, selector: dict[str, Any] | None = None
    ) -> list[Object]:
        return self.informers.get(resource).list(
            namespace if resource.namespaced else None, selector
        )


# -- the work queue -----------------------------------------------------------------------------


class WorkQueue:
    """client-go's rate-limiting work queue: a key is queued once, handed to one worker at a
    time, queued again when added while being processed; failures back off per key."""

    BASE_DELAY = 0.005
    MAX_DELAY = 1000.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.cv = threading.Condition()
        self.queue: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.failures: Counter[str] = Counter()
        self.delayed: list[tuple[float, int, str]] = []
        self.counter = itertools.count()
        self.shutdown = False

    def add(self, key: str) -> None:
        with self.cv:
            if self.shutdown or key in self.dirty:
                return
            self.dirty.add(key)
            if key not in self.processing:
                self.queue.append(key)
                self.cv.notify_all()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self.cv:
            heapq.heappush(self.delayed, (time.monotonic() + delay, next(self.counter), key))
            self.cv.notify_all()

    def add_rate_limited(self, key: str) -> None:
        with self.cv:
            failures = self.failures[key]
            self.failures[key] += 1
        self.add_after(key, min(self.BASE_DELAY * 2**failures, self.MAX_DELAY))

    def forget(self, key: str) -> None:
        with self.cv:
            self.failures.pop(key, None)

    def _promote(self) -> float | None:
        """Moves due delayed keys into the queue; the wait until the next one (lock held)."""
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            _, _, key = heapq.heappop(self.delayed)
            if key not in self.dirty:
                self.dirty.add(key)
                if key not in self.processing:
                    self.queue.append(key)
        return self.delayed[0][0] - now if self.delayed else None

    def get(self) -> str | None:
        with self.cv:
            while True:
                wait = self._promote()
                if self.queue:
                    key = self.queue.pop(0)
                    self.processing.add(key)
                    self.dirty.discard(key)
                    return key
                if self.shutdown:
                    return None
                self.cv.wait(timeout=wait if wait is not None else 1.0)

    def done(self, key: str) -> None:
        with self.cv:
            self.processing.discard(key)
            if key in self.dirty:
                self.queue.append(key)
            self.cv.notify_all()

    def idle(self) -> bool:
        with self.cv:
            self._promote()
            return not self.queue and not self.processing

    def close(self) -> None:
        with self.cv:
            self.shutdown = True
            self.cv.notify_all()


# -- the loop -----------------------------------------------------------------------------------


class Metacontroller:
    """The controllers of ``manifests`` run in the background against the real API server."""

    def __init__(
        self,
        api: KubeApi,
        hooks_base: str,
        manifests: Iterable[Object],
        *,
        workers: int = 5,
        context: ssl.SSLContext | None = None,
        garbage_collector: GarbageCollectorStandIn | None = None,
        gc_interval: float = 0.2,
    ) -> None:
        self.api = api
        self.informers = Informers(api)
        self.reader = CacheReader(self.informers)
        self.workers = workers
        self.garbage_collector = garbage_collector
        self.gc_interval = gc_interval
        self.composites: dict[str, CompositeController] = {}
        self.decorators: dict[str, DecoratorController] = {}
        self.queues: dict[str, WorkQueue] = {}
        self.syncs: Counter[tuple[str, str]] = Counter()
        """Syncs done (hook called or not), by (controller, parent key)."""
        self.errors: dict[tuple[str, str], str] = {}
        """The last error of each (controller, parent key) whose last sync failed."""
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.started = False
        self.busy_related: set[str] = set()
        for manifest in manifests:
            name = str(manifest["metadata"]["name"])
            if manifest["kind"] == "CompositeController":
                self.composites[name] = CompositeController(
                    api, manifest, hooks_base, self.reader, context
                )
            elif manifest["kind"] == "DecoratorController":
                self.decorators[name] = DecoratorController(
                    api, manifest, hooks_base, self.reader, context
                )
            else:
                raise ValueError(f"not a controller: {manifest.get('kind')}")
            self.queues[name] = WorkQueue(name)
        self._related_handlers: set[tuple[str, str, str]] = set()

    # wiring

    def _wire(self) -> None:
        for name, composite in self.composites.items():
            self.informers.get(composite.parent_resource, wait=False).add_handler(
                self._composite_parent_handler(name, composite)
            )
            for resource in composite.child_resources:
                self.informers.get(resource, wait=False).add_handler(
                    self._composite_child_handler(name, composite)
                )
        for name, decorator in self.decorators.items():
            for resource in decorator.parent_resources:
                self.informers.get(resource, wait=False).add_handler(
                    self._decorator_parent_handler(name, decorator)
                )
            for resource in decorator.attachment_resources:
                self.informers.get(resource, wait=False).add_handler(
                    self._decorator_child_handler(name, decorator)
                )

    def _composite_parent_handler(
        self, name: str, composite: CompositeController
    ) -> Callable[[str, Object | None, Object], None]:
        queue = self.queues[name]

        def handle(event: str, old: Object | None, new: Object) -> None:
            if event == "update" and old is not None and composite.ignore_status_changes:
                same = (
                    old["metadata"].get("generation") == new["metadata"].get("generation")
                    and old["metadata"].get("labels") == new["metadata"].get("labels")
                    and old["metadata"].get("annotations") == new["metadata"].get("annotations")
                    and not deleting(new)
                )
                if same:
                    return
            if composite.cares(new):
                queue.add(uniform_key(new))

        return handle

    def _composite_parent(
        self, composite: CompositeController, namespace: str | None, ref: dict[str, Any]
    ) -> Object | None:
        """``resolveControllerRef``."""
        group = (
            ref.get("apiVersion", "").split("/", 1)[0] if "/" in ref.get("apiVersion", "") else ""
        )
        resource = composite.parent_resource
        if group != resource.group or ref.get("kind") != resource.kind:
            return None
        parent = self.informers.get(resource).get(
            namespace if resource.namespaced else None, ref["name"]
        )
        if (
            parent is None
            or parent["metadata"]["uid"] != ref.get("uid")
            or not composite.cares(parent)
        ):
            return None
        return parent

    def _composite_child_handler(
        self, name: str, composite: CompositeController
    ) -> Callable[[str, Object | None, Object], None]:
        queue = self.queues[name]

        def handle(event: str, old: Object | None, new: Object) -> None:
            if (
                event == "update"
                and old is not None
                and old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion")
            ):
                return
            namespace = new["metadata"].get("namespace")
            ref = controller_ref(new)
            if event == "delete" or deleting(new):
                if (
                    ref is not None
                    and (parent := self._composite_parent(composite, namespace, ref)) is not None
                ):
                    queue.add(uniform_key(parent))
                return
            if ref is not None:
                if (parent := self._composite_parent(composite, namespace, ref)) is not None:
                    queue.add(uniform_key(parent))
                return
            # An orphan: every parent whose selector matches may adopt it.
            resource = composite.parent_resource
            for parent in self.informers.get(resource).list(
                namespace if resource.namespaced else None
            ):
                try:
                    selector = composite.child_selector(parent)
                except SyncError:
                    continue
                if selector_matches(selector, new["metadata"].get("labels")):
                    queue.add(uniform_key(parent))

        return handle

    @staticmethod
    def _decorator_key(parent: Object) -> str:
        meta = parent["metadata"]
        return (
            f"{parent['apiVersion']}:{parent['kind']}:{meta.get('namespace') or ''}:{meta['name']}"
        )

    def _decorator_parent_handler(
        self, name: str, decorator: DecoratorController
    ) -> Callable[[str, Object | None, Object], None]:
        queue = self.queues[name]

        def handle(event: str, old: Object | None, new: Object) -> None:
            if decorator.cares(new):
                queue.add(self._decorator_key(new))

        return handle

    def _decorator_child_handler(
        self, name: str, decorator: DecoratorController
    ) -> Callable[[str, Object | None, Object], None]:
        queue = self.queues[name]

        def handle(event: str, old: Object | None, new: Object) -> None:
            if (
                event == "update"
                and old is not None
                and old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion")
            ):
                return
            ref = controller_ref(new)
            if ref is None:
                return
            group = (
                ref.get("apiVersion", "").split("/", 1)[0]
                if "/" in ref.get("apiVersion", "")
                else ""
            )
            for resource in decorator.parent_resources:
                if resource.group != group or resource.kind != ref.get("kind"):
                    continue
                namespace = new["metadata"].get("namespace") if resource.namespaced else None
                parent = self.informers.get(resource).get(namespace, ref["name"])
                if (
                    parent is not None
                    and parent["metadata"]["uid"] == ref.get("uid")
                    and decorator.cares(parent)
                ):
                    queue.add(self._decorator_key(parent))

        return handle

    def _watch_related(self, controller: str, resources: Iterable[Resource]) -> None:
        """An informer (and a handler of this controller) for every related resource named."""
        for resource in resources:
            key = (controller, resource.api_version, resource.plural)
            with self.lock:
                if key in self._related_handlers:
                    continue
                self._related_handlers.add(key)
            self.informers.get(resource, wait=False).add_handler(self._related_handler(controller))
            self.informers.get(resource)

    def _related_handler(self, name: str) -> Callable[[str, Object | None, Object], None]:
        queue = self.queues[name]

        def handle(event: str, old: Object | None, new: Object) -> None:
            if (
                event == "update"
                and old is not None
                and old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion")
            ):
                return
            changed = [new] if old is None or event == "delete" else [old, new]
            if name in self.composites:
                composite = self.composites[name]
                for parent in self.informers.get(composite.parent_resource).list():
                    if self._related_to(
                        composite, parent, composite.parent_resource.namespaced, changed
                    ):
                        queue.add(uniform_key(parent))
            else:
                decorator = self.decorators[name]
                for resource in decorator.parent_resources:
                    for parent in self.informers.get(resource).list():
                        if self._related_to(decorator, parent, resource.namespaced, changed):
                            queue.add(self._decorator_key(parent))

        return handle

    @staticmethod
    def _related_to(
        controller: CompositeController | DecoratorController,
        parent: Object,
        namespaced: bool,
        changed: list[Object],
    ) -> bool:
        try:
            return any(controller.customize.matches(parent, namespaced, obj) for obj in changed)
        except SyncError as error:  # the customize hook failed: the relist will try again
            log.debug("customize of %s failed: %s", uniform_key(parent), error)
            return False

    # running

    def _worker(self, name: str) -> None:
        queue = self.queues[name]
        while True:
            key = queue.get()
            if key is None:
                return
            try:
                resync = self._sync(name, key)
                queue.forget(key)
                with self.lock:
                    self.errors.pop((name, key), None)
                if resync > 0:
                    queue.add_after(key, resync)
            except SyncError as error:
                self._failed(name, key, str(error))
                if error.retry_after:
                    queue.add_after(key, error.retry_after)
                else:
                    queue.add_rate_limited(key)
            except Exception as error:  # Metacontroller logs and retries whatever went wrong
                log.exception("sync of %s %s raised", name, key)
                self._failed(name, key, f"{type(error).__name__}: {error}")
                queue.add_rate_limited(key)
            finally:
                queue.done(key)

    def _failed(self, name: str, key: str, message: str) -> None:
        log.warning("sync of %s %s failed: %s", name, key, message)
        with self.lock:
            self.errors[(name, key)] = message

    def _sync(self, name: str, key: str) -> float:
        with self.lock:
            self.syncs[(name, key)] += 1
        if name in self.composites:
            composite = self.composites[name]
            namespace, _, parent_name = key.rpartition("/")
            outcome = composite.sync(namespace or None, parent_name)
            parent = self.reader.get(composite.parent_resource, namespace or None, parent_name)
            if parent is not None:
                self._watch_related(name, self._related_resources(composite, parent))
            return outcome.resync_after
        decorator = self.decorators[name]
        api_version, kind, namespace, parent_name = key.split(":", 3)
        outcome = decorator.sync(api_version, kind, namespace or None, parent_name)
        parent = self.reader.get(
            decorator.parent_resource_of(api_version, kind), namespace or None, parent_name
        )
        if parent is not None:
            self._watch_related(name, self._related_resources(decorator, parent))
        return outcome.resync_after

    def _related_resources(
        self, controller: CompositeController | DecoratorController, parent: Object
    ) -> list[Resource]:
        rules = controller.customize.cached_rules(parent) or []
        return [self.api.resource(rule["apiVersion"], rule["resource"]) for rule in rules]

    def _resync_periodically(self, name: str, seconds: float) -> None:
        while not self.stopping.wait(max(seconds, 1.0)):
            if name in self.composites:
                composite = self.composites[name]
                for parent in self.informers.get(composite.parent_resource).list():
                    if composite.cares(parent):
                        self.queues[name].add(uniform_key(parent))
            else:
                decorator = self.decorators[name]
                for resource in decorator.parent_resources:
                    for parent in self.informers.get(resource).list():
                        if decorator.cares(parent):
                            self.queues[name].add(self._decorator_key(parent))

    def _collect_garbage(self) -> None:
        assert self.garbage_collector is not None
        while not self.stopping.wait(self.gc_interval):
            try:
                self.garbage_collector.collect()
            except (ApiError, OSError) as error:
                log.warning("garbage collector stand-in: %s", error)

    def _thread(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self) -> None:
        """Informers, workers and resync threads; once (a second call does nothing)."""
        with self.lock:
            if self.started:
                return
            self.started = True
        self._wire()
        self.informers.start()
        for name in self.queues:
            for index in range(self.workers):
                self._thread(self._worker, name, name=f"{name}-worker-{index}")
            controller: CompositeController | DecoratorController = (
                self.composites.get(name) or self.decorators[name]
            )
            period = controller.manifest["spec"].get("resyncPeriodSeconds")
            if period:
                self._thread(self._resync_periodically, name, float(period), name=f"{name}-resync")
        if self.garbage_collector is not None:
            self._thread(self._collect_garbage, name="garbage-collector-stand-in")

    def stop(self) -> None:
        self.stopping.set()
        for queue in self.queues.values():
            queue.close()
        for thread in self.threads:
            thread.join(timeout=30)
        self.informers.stop()

    def __enter__(self) -> Metacontroller:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # for the tests

    def idle(self) -> bool:
        return all(queue.idle() for queue in self.queues.values())

    def wait_idle(self, timeout: float = 60.0, quiet: float = 0.3) -> None:
        """Until every queue has been empty, with no sync running, for ``quiet`` seconds.
        Events still travelling from the API server can start syncs after it returns: assert
        on outcomes with a deadline (``nodesync_process.eventually``) where it matters."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while True:
            now = time.monotonic()
            if self.idle():
                since = since if since is not None else now
                if now - since >= quiet:
                    return
            else:
                since = None
            if now > deadline:
                busy = {
                    n: (q.queue, sorted(q.processing))
                    for n, q in self.queues.items()
                    if not q.idle()
                }
                raise AssertionError(
                    f"Metacontroller still busy after {timeout:.0f}s: {busy}; errors: {self.errors}"
                )
            time.sleep(0.02)

    def raise_errors(self, namespace: str | None = None) -> None:
        """Fails when the last sync of some parent (of ``namespace``, when given) failed."""
        with self.lock:
            errors = dict(self.errors)
        if namespace is not None:
            errors = {k: v for k, v in errors.items() if _key_namespace(k[1]) == namespace}
        assert not errors, f"syncs failed: {errors}"

    def sync_count(self, controller: str, key: str) -> int:
        with self.lock:
            return self.syncs[(controller, key)]

    def hooks_of(self, controller: str) -> Any:
        found = self.composites.get(controller) or self.decorators.get(controller)
        assert found is not None, controller
        return found.hooks


def _key_namespace(key: str) -> str:
    """The namespace of a queue key: ``ns/name`` or ``apiVersion:kind:ns:name``."""
    if key.count(":") >= 3:
        return key.split(":")[-2]
    return key.rpartition("/")[0]


def start(
    plane: ControlPlane,
    hooks_base: str,
    *names_or_manifests: str | Object,
    workers: int = 5,
    context: ssl.SSLContext | None = None,
    garbage_collector: GarbageCollectorStandIn | None = None,
    gc_interval: float = 0.2,
) -> Metacontroller:
    """A running loop of the given controllers (all of the install's when none is given) as
    Metacontroller's ServiceAccount against ``plane``; stop it with ``stop()``."""
    names = [item for item in names_or_manifests if isinstance(item, str)]
    manifests = [item for item in names_or_manifests if not isinstance(item, str)]
    chosen = manifests + controllers(*names) if names or manifests else controllers()
    loop = Metacontroller(
        api_for(plane),
        hooks_base,
        chosen,
        workers=workers,
        context=context,
        garbage_collector=garbage_collector,
        gc_interval=gc_interval,
    )
    loop.start()
    return loop
