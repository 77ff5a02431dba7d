"""Metacontroller v4.17.2, emulated for the tests: one sync of a CompositeController or a
DecoratorController parent, done as Metacontroller does it against the real API server.

Nothing in the product loops: Metacontroller does. The tests do its part with
:class:`CompositeStep` and :class:`DecoratorStep` (one sync, reading the API server live),
or with the watch-driven background loop of ``metacontroller_loop`` (which runs the same
syncs from informer caches, as Metacontroller does). Only the hook URLs are moved onto the
test's hook server (there is no cluster DNS); everything else is what Metacontroller does.

Facts relied on, from Metacontroller's own source (repository metacontroller/metacontroller,
the v4.17 line; file and function):

Composite sync order, ``pkg/controller/composite/controller.go`` ``syncParentObject``:
 1. a parent that neither matches ``parentResource.labelSelector`` nor carries the
    finalizer is ignored;
 2. ``finalizer.SyncObject`` (``pkg/controller/common/finalizer/finalizer.go``) adds the
    finalizer ``metacontroller.io/compositecontroller-<name>`` when a finalize hook exists
    (not to a parent already being deleted), or removes it when none exists, before
    anything else, with a GET/PUT loop (``AtomicUpdate`` in
    ``pkg/dynamic/clientset/clientset.go``);
 3. ``claimChildren``: every object of each child resource in the parent's namespace is
    claimed through ``ClaimObject`` (``pkg/third_party/kubernetes/controller_ref_manager.go``)
    with the selector ``controller-uid=<parent uid>`` when ``generateSelector`` is true
    (``makeSelector``; else ``spec.selector``): owned by another controller, ignored; owned
    and matching, claimed; owned and not matching, released (its owner reference removed)
    unless the parent is being deleted; an orphan that matches is adopted (controller
    reference added, ``pkg/dynamic/controllerref/unstructured.go`` ``adoptChild``) after a
    live GET proves the parent still exists and is not being deleted (``canAdoptFunc``),
    never while the parent or the orphan is being deleted. Every child group is in the
    map even when empty (``childMap.InitGroup``);
 4. related objects (``pkg/controller/common/customize/manager.go`` ``GetRelatedObjects``):
    the customize hook is called with ``{controller, parent}`` and its answer cached per
    (parent uid, generation) (``customizeKey``); each rule's group is in the map even when
    empty; v2 rule selection (``determineSelectionType``): names with a selector is an
    error; ``namespace`` with ``labelSelector`` lists that namespace; ``namespace`` or
    ``names`` lists that namespace (all when empty) and keeps the names; otherwise the
    selector over all namespaces (v1 hooks: the parent's namespace for a namespaced parent);
 5. the finalize hook is called instead of sync when it exists and the parent is being
    deleted or no longer matches (``determineHookToCall``); the request is built per hook
    version (``composite/api/v2/hooks.go``: ``controller``, ``parent``, ``children``,
    ``related``, ``finalizing``, keys ``namespace/name``; v1: keys relative to the parent);
    only HTTP 200 counts (``pkg/hooks``), a 429's ``Retry-After`` delays the retry; v2
    answers are read strictly (unknown fields are an error);
 6. children without a namespace get the parent's (``applyNamespaceDefaults``); a positive
    ``resyncAfterSeconds`` enqueues the parent again after that delay;
 7. ``finalized: true`` removes the finalizer at once (``RemoveFinalizer``);
 8. with ``generateSelector`` every desired child gets the label ``controller-uid: <uid>``
    unless it has one; a desired child that does not match the selector is an error;
 9. ``ManageChildren`` (``pkg/controller/common/manage_children.go``) runs only when the
    parent is not being deleted, or it is and ``ShouldFinalize`` holds (our finalizer still
    there, no ``foregroundDeletion``/``orphan`` finalizer): so after ``finalized: true``
    children are never touched again and nothing deletes them but the garbage collector.
    It deletes the observed children the answer left out (UID precondition, background
    propagation; not those already being deleted), creates the missing ones (last applied
    annotation first, then the controller reference; AlreadyExists ignored) and updates the
    others by the three-way merge of ``metacontroller_apply`` when the merge changes
    something, per ``updateStrategy.method`` (default ``OnDelete``: never; ``InPlace``: PUT;
    ``Recreate``: delete), skipping children being deleted; NotFound and Conflict ignored;
10. ``updateParentStatus``: the answered ``status`` (an empty one when none) plus
    ``observedGeneration`` replaces ``.status`` through the status subresource when it
    differs (``AtomicStatusUpdate``); NotFound (the parent went away) and Conflict are
    ignored.

Decorator sync, ``pkg/controller/decorator/controller.go`` ``syncParentObject``: the same
finalizer handling (``metacontroller.io/decoratorcontroller-<name>``, only with a finalize
hook); the observed attachments (``getChildren``) are the objects of each attachment
resource (the parent's namespace, or all for a cluster-scoped parent) whose controller
reference is the parent and whose annotation ``metacontroller.k8s.io/decorator-controller``
names the decorator, every group present even when empty, no adoption; the request is
built per hook version (``pkg/controller/decorator/hooks.go`` ``buildHookRequest``; v2,
``decorator/api/v2/hooks.go``: ``controller``, ``parent``, ``children``, ``related``,
``finalizing``; v1: ``object``, ``attachments``); the answer's ``labels`` and
``annotations`` are merged into the parent (null deletes a key), a null ``status`` leaves
it alone; every desired attachment gets the annotation above, then ``ManageChildren`` as
for a composite (no ``controller-uid`` label).

Where the hook version decides the request of a DecoratorController, the newest source
read sends ``parent``/``children`` for v2; the issue that asked for this emulation speaks
of ``attachments`` under v4.17.2. The project's decorator hook reads both shapes
(``hooks/binding/decorator.py``); :data:`DECORATOR_V2_FIELDS` says which one is sent.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from controlplane import ControlPlane
from kubeapi import ApiError, KubeApi, Object, Resource
from metacontroller_apply import apply_update, for_create

log = logging.getLogger("metacontroller-emulation")

USER_AGENT = "metacontroller/v4.17.2 (linux/amd64) emulated-by-tests"
CONTROLLER_UID = "controller-uid"
DECORATOR_ANNOTATION = "metacontroller.k8s.io/decorator-controller"
GC_FINALIZERS = ("foregroundDeletion", "orphan")
HOOK_TIMEOUT = 10.0
DECORATOR_V2_FIELDS = ("parent", "children")
"""The request fields of a v2 DecoratorController hook: ``("object", "attachments")`` would
send the v1 names instead."""

STRICT_FIELDS = {
    "composite": {"status", "children", "resyncAfterSeconds", "finalized"},
    "decorator": {
        "labels",
        "annotations",
        "status",
        "attachments",
        "resyncAfterSeconds",
        "finalized",
    },
    "customize": {"relatedResources"},
}
RULE_FIELDS = {"apiVersion", "resource", "labelSelector", "namespaceSelector", "namespace", "names"}


class SyncError(Exception):
    """A sync that Metacontroller would retry with backoff (hook failure, API error...)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- labels, selectors, keys --------------------------------------------------------------------


def group_key(kind: str, api_version: str) -> str:
    """``Kind.apiVersion``: how Metacontroller names a group of objects in a request."""
    return f"{kind}.{api_version}"


def uniform_key(obj: Object) -> str:
    """``namespace/name`` (v2 keys), or ``name`` for a cluster-scoped object."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def relative_key(parent: Object, obj: Object) -> str:
    """v1 keys: ``namespace/name`` only for a namespaced object of a cluster-scoped parent."""
    meta = obj["metadata"]
    if not parent["metadata"].get("namespace") and meta.get("namespace"):
        return f"{meta['namespace']}/{meta['name']}"
    return str(meta["name"])


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels); a missing selector matches all."""
    labels = labels or {}
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values") or [],
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selector_string(selector: dict[str, Any] | None) -> str:
    """The same selector as a ``labelSelector`` query parameter."""
    parts = [f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    for expression in (selector or {}).get("matchExpressions") or []:
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values") or [],
        )
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def controller_ref(obj: Object) -> dict[str, Any] | None:
    return next(
        (o for o in obj["metadata"].get("ownerReferences") or [] if o.get("controller")), None
    )


def has_finalizer(obj: Object, name: str) -> bool:
    return name in (obj["metadata"].get("finalizers") or [])


def deleting(obj: Object) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def make_controller_ref(parent: Object) -> dict[str, Any]:
    meta = parent["metadata"]
    return {
        "apiVersion": parent["apiVersion"],
        "kind": parent["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# -- reading the cluster ------------------------------------------------------------------------


class Reader(Protocol):
    """Where a sync reads objects: the API server live, or the loop's informer caches."""

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object | None: ...

    def list(
        self, resource: Resource, namespace: str | None, selector: dict[str, Any] | None = None
    ) -> list[Object]: ...


class LiveReader:
    """Reads through the API server at every call (the one-shot steps)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        found = self.api.find(resource, namespace, name)
        if found is not None:
            found.setdefault("apiVersion", resource.api_version)
            found.setdefault("kind", resource.kind)
        return found

    def list(
        self, resource: Resource, namespace: str | None, selector: dict[str, Any] | None = None
    ) -> list[Object]:
        items, _ = self.api.list(
            resource, namespace if resource.namespaced else None, selector_string(selector)
        )
        return [
            item for item in items if selector_matches(selector, item["metadata"].get("labels"))
        ]


def api_for(plane: ControlPlane) -> KubeApi:
    """The client of ``plane``'s API server as its admin (Metacontroller's user agent), one per
    control plane; its connections close when the control plane stops."""
    api: KubeApi | None = getattr(plane, "metacontroller_api", None)
    if api is None:
        api = KubeApi(plane.server, plane.ssl_context(), user_agent=USER_AGENT)
        plane.metacontroller_api = api  # type: ignore[attr-defined]
        plane.on_stop.append(api.close)
    return api


def atomic_update(
    api: KubeApi,
    resource: Resource,
    obj: Object,
    change: Callable[[Object], bool],
    *,
    status: bool = False,
) -> Object:
    """GET, change, PUT with the resourceVersion read, again on Conflict (``AtomicUpdate``);
    NotFound when the object was replaced by another of the same name."""
    meta = obj["metadata"]
    for attempt in range(5):
        current = api.get(resource, meta.get("namespace"), meta["name"])
        if current["metadata"]["uid"] != meta["uid"]:
            raise ApiError(404, "NotFound", f"{meta['name']} was replaced")
        current.setdefault("apiVersion", resource.api_version)
        current.setdefault("kind", resource.kind)
        if not change(current):
            return current
        try:
            if status and "status" in resource.subresources:
                return api.update_status(resource, current)
            return api.update(resource, current)
        except ApiError as error:
            if not error.conflict or attempt == 4:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


# -- hooks --------------------------------------------------------------------------------------


@dataclass
class HookStats:
    """What a controller's hooks were sent: calls and request bytes, per hook."""

    calls: Counter[str] = field(default_factory=Counter)
    request_bytes: Counter[str] = field(default_factory=Counter)
    per_parent: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Calls by (hook, parent ``namespace/name``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, hook: str, size: int, parent: str) -> None:
        with self.lock:
            self.calls[hook] += 1
            self.request_bytes[hook] += size
            self.per_parent[(hook, parent)] += 1


class Hooks:
    """The hooks of one controller manifest, called on the test's hook server."""

    def __init__(
        self, manifest: Object, hooks_base: str, context: ssl.SSLContext | None = None
    ) -> None:
        self.spec = manifest["spec"].get("hooks") or {}
        self.hooks_base = hooks_base.rstrip("/")
        self.context = context
        self.stats = HookStats()
        self.requests: list[tuple[str, Object]] = []
        self.keep_requests = False
        """When set, every request body is kept in :attr:`requests` (for tests of requests)."""

    def has(self, hook: str) -> bool:
        return hook in self.spec

    def version(self, hook: str) -> str:
        return str((self.spec.get(hook) or {}).get("version") or "v1")

    def url(self, hook: str) -> str:
        webhook = self.spec[hook]["webhook"]
        path = urlsplit(webhook["url"]).path if webhook.get("url") else webhook.get("path") or ""
        return self.hooks_base + path

    def call(self, hook: str, body: Object, kind: str) -> Object:
        """POST ``body``; the answer of a 200, else SyncError (with 429's Retry-After)."""
        data = json.dumps(body).encode()
        root = body.get("parent") or body.get("object") or {}
        self.stats.record(hook, len(data), uniform_key(root) if root.get("metadata") else "")
        if self.keep_requests:
            self.requests.append((hook, copy.deepcopy(body)))
        request = urllib.request.Request(
            self.url(hook), data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(
                request, timeout=HOOK_TIMEOUT, context=self.context
            ) as response:
                raw = response.read()
                code = response.status
        except urllib.error.HTTPError as error:
            with error:
                text = error.read().decode(errors="replace")[:500]
            retry = error.headers.get("Retry-After") if error.code == 429 else None
            raise SyncError(
                f"{hook} hook answered {error.code}: {text}", float(retry) if retry else None
            ) from None
        except OSError as error:
            raise SyncError(f"{hook} hook failed: {error}") from None
        if code != 200:
            raise SyncError(f"{hook} hook answered {code}")
        answer = json.loads(raw) if raw.strip() else {}
        if not isinstance(answer, dict):
            raise SyncError(f"{hook} hook answered a non-object: {raw[:200]!r}")
        if (
            self.version(hook) == "v2"
            and (self.spec[hook]["webhook"].get("responseUnMarshallMode") or "strict") == "strict"
        ):
            _strict(hook, answer, kind)
        return answer


def _strict(hook: str, answer: Object, kind: str) -> None:
    unknown = set(answer) - STRICT_FIELDS[kind]
    if unknown:
        raise SyncError(
            f"{hook} hook answer has unknown fields {sorted(unknown)} (v2 reads strictly)"
        )
    for rule in answer.get("relatedResources") or []:
        extra = set(rule) - RULE_FIELDS
        if extra:
            raise SyncError(
                f"{hook} hook rule has unknown fields {sorted(extra)} (v2 reads strictly)"
            )


# -- customize and related objects --------------------------------------------------------------


class Customize:
    """The customize hook's answers, cached per (parent uid, generation), and the related objects."""

    def __init__(self, api: KubeApi, controller: Object, hooks: Hooks) -> None:
        self.api = api
        self.controller = controller
        self.hooks = hooks
        self.cache: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.hooks.has("customize")

    @property
    def version(self) -> str:
        return self.hooks.version("customize")

    def cached_rules(self, parent: Object) -> list[dict[str, Any]] | None:
        meta = parent["metadata"]
        with self.lock:
            return self.cache.get((meta["uid"], int(meta.get("generation") or 0)))

    def rules(self, parent: Object) -> list[dict[str, Any]]:
        if not self.enabled:
            return []
        cached = self.cached_rules(parent)
        if cached is not None:
            return cached
        answer = self.hooks.call(
            "customize", {"controller": self.controller, "parent": parent}, "customize"
        )
        rules = list(answer.get("relatedResources") or [])
        meta = parent["metadata"]
        with self.lock:
            self.cache[(meta["uid"], int(meta.get("generation") or 0))] = rules
        return rules

    def related(
        self, parent: Object, reader: Reader, parent_namespaced: bool
    ) -> dict[str, dict[str, Object]]:
        """The related objects of ``parent`` by group, then by uniform key (every rule's group present)."""
        related: dict[str, dict[str, Object]] = {}
        parent_namespace = parent["metadata"].get("namespace") or ""
        for rule in self.rules(parent):
            resource = self.api.resource(rule["apiVersion"], rule["resource"])
            group = related.setdefault(group_key(resource.kind, rule["apiVersion"]), {})
            namespace, names, labels = (
                rule.get("namespace") or "",
                rule.get("names") or [],
                rule.get("labelSelector"),
            )
            if rule.get("namespaceSelector") is not None:
                if namespace or names:
                    raise SyncError(
                        f"related rule with namespaceSelector and namespace/names: {rule}"
                    )
                namespaces = reader.list(
                    self.api.resource("v1", "namespaces"), None, rule["namespaceSelector"]
                )
                found = [
                    o
                    for ns in namespaces
                    for o in reader.list(resource, ns["metadata"]["name"], labels)
                ]
            elif names and labels is not None:
                raise SyncError(f"related rule with both names and labelSelector: {rule}")
            elif labels is not None and namespace:
                found = reader.list(resource, namespace, labels)
            elif namespace or names:
                if (
                    self.version == "v1"
                    and parent_namespaced
                    and resource.namespaced
                    and namespace
                    and namespace != parent_namespace
                ):
                    raise SyncError(
                        f"requested related object namespace {namespace} differs from parent object namespace {parent_namespace}"
                    )
                found = [
                    o
                    for o in reader.list(resource, namespace or None)
                    if not names or o["metadata"]["name"] in names
                ]
            else:
                in_parent_namespace = (
                    self.version == "v1" and parent_namespaced and resource.namespaced
                )
                found = reader.list(
                    resource, parent_namespace if in_parent_namespace else None, labels
                )
            for obj in found:
                group[uniform_key(obj)] = obj
        return related

    def matches(self, parent: Object, parent_namespaced: bool, related: Object) -> bool:
        """Whether a change of ``related`` concerns ``parent`` (``findRelatedParents``)."""
        for rule in self.rules(parent):
            try:
                resource = self.api.resource(rule["apiVersion"], rule["resource"])
            except ApiError:
                continue
            if (
                related.get("apiVersion") != rule["apiVersion"]
                or related.get("kind") != resource.kind
            ):
                continue
            meta = related["metadata"]
            namespace, names, labels = (
                rule.get("namespace") or "",
                rule.get("names") or [],
                rule.get("labelSelector"),
            )
            if rule.get("namespaceSelector") is not None:
                ok = selector_matches(
                    labels, meta.get("labels")
                )  # namespace labels are checked by the sync
            elif labels is not None and namespace:
                ok = (
                    selector_matches(labels, meta.get("labels"))
                    and meta.get("namespace") == namespace
                )
            elif namespace or names:
                if self.version == "v1" and parent_namespaced:
                    ok = not meta.get("namespace") or meta.get("namespace") == parent[
                        "metadata"
                    ].get("namespace")
                else:
                    ok = not namespace or meta.get("namespace") == namespace
                ok = ok and (not names or meta["name"] in names)
            else:
                ok = selector_matches(labels, meta.get("labels"))
                if self.version == "v1" and parent_namespaced and meta.get("namespace"):
                    ok = ok and meta.get("namespace") == parent["metadata"].get("namespace")
            if ok:
                return True
        return False


def stored_controller(api: KubeApi, manifest: Object) -> Object:
    """The controller object as the API server stores it (what Metacontroller's informer
    holds and sends as ``controller``), or the manifest when it is not installed."""
    kind_plural = {
        "CompositeController": "compositecontrollers",
        "DecoratorController": "decoratorcontrollers",
    }
    try:
        resource = api.resource("metacontroller.k8s.io/v1alpha1", kind_plural[manifest["kind"]])
        found = api.find(resource, None, manifest["metadata"]["name"])
    except ApiError:
        found = None
    return manifest if found is None else found


# -- children -----------------------------------------------------------------------------------


class UpdateStrategy:
    """``updateStrategy.method`` per (API group, kind) of the child rules; default OnDelete."""

    def __init__(self, api: KubeApi, rules: Iterable[dict[str, Any]]) -> None:
        self.methods: dict[tuple[str, str], str] = {}
        for rule in rules:
            method = (rule.get("updateStrategy") or {}).get("method")
            if method and method != "OnDelete":
                resource = api.resource(rule["apiVersion"], rule["resource"])
                self.methods[(resource.group, resource.kind)] = method

    def method(self, group: str, kind: str) -> str:
        return self.methods.get((group, kind), "OnDelete")


def manage_children(
    api: KubeApi,
    strategy: UpdateStrategy,
    parent: Object,
    observed: dict[str, dict[str, Object]],
    desired: dict[str, dict[str, Object]],
) -> list[str]:
    """``ManageChildren``: delete, create, update; the errors (the others are still tried)."""
    errors: list[str] = []
    for key, objects in observed.items():
        for name, obj in objects.items():
            if deleting(obj) or name in desired.get(key, {}):
                continue
            resource = api.resource_of_kind(obj["apiVersion"], obj["kind"])
            try:
                api.delete(
                    resource,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    uid=obj["metadata"]["uid"],
                )
                log.info("deleted child %s %s of %s", obj["kind"], name, uniform_key(parent))
            except ApiError as error:
                if not error.not_found:
                    errors.append(f"can't delete {obj['kind']} {name}: {error}")
    for key, objects in desired.items():
        for name, obj in objects.items():
            try:
                resource = api.resource_of_kind(obj["apiVersion"], obj["kind"])
            except ApiError as error:
                errors.append(str(error))
                continue
            old = observed.get(key, {}).get(name)
            if old is None:
                created = for_create(obj)
                created["metadata"]["ownerReferences"] = [
                    *(created["metadata"].get("ownerReferences") or []),
                    make_controller_ref(parent),
                ]
                try:
                    api.create(resource, created)
                    log.info("created child %s %s of %s", obj["kind"], name, uniform_key(parent))
                except ApiError as error:
                    if not error.already_exists:
                        errors.append(f"can't create {obj['kind']} {name}: {error}")
                continue
            try:
                updated = apply_update(old, obj)
            except ValueError as error:
                errors.append(f"can't merge {obj['kind']} {name}: {error}")
                continue
            if updated == old or deleting(old):
                continue
            method = strategy.method(resource.group, resource.kind)
            try:
                if method in ("InPlace", "RollingInPlace"):
                    api.update(resource, updated)
                    log.info("updated child %s %s of %s", obj["kind"], name, uniform_key(parent))
                elif method in ("Recreate", "RollingRecreate"):
                    api.delete(
                        resource,
                        old["metadata"].get("namespace"),
                        old["metadata"]["name"],
                        uid=old["metadata"]["uid"],
                    )
                elif method != "OnDelete":
                    errors.append(
                        f"invalid update strategy for {resource.kind}: unknown method {method!r}"
                    )
            except ApiError as error:
                if not (error.not_found or error.conflict):
                    errors.append(f"can't update {obj['kind']} {name}: {error}")
    return errors


def group_desired(parent: Object, children: Iterable[Object]) -> dict[str, dict[str, Object]]:
    """The answered children by group and uniform key, with the parent's namespace by default."""
    grouped: dict[str, dict[str, Object]] = {}
    for answered in children:
        child = copy.deepcopy(answered)
        meta = child.setdefault("metadata", {})
        if not meta.get("namespace") and parent["metadata"].get("namespace"):
            meta["namespace"] = parent["metadata"]["namespace"]
        grouped.setdefault(group_key(child["kind"], child["apiVersion"]), {})[
            uniform_key(child)
        ] = child
    return grouped


def keyed(
    parent: Object, groups: dict[str, dict[str, Object]], version: str
) -> dict[str, dict[str, Object]]:
    """The groups as a request carries them: uniform keys (v2) or relative keys (v1)."""
    if version == "v2":
        return groups
    return {
        key: {relative_key(parent, obj): obj for obj in objects.values()}
        for key, objects in groups.items()
    }


# -- controllers --------------------------------------------------------------------------------


@dataclass
class SyncOutcome:
    """What one sync did: the hook's answer (None when nothing was called), a requested resync."""

    answer: Object | None
    resync_after: float = 0.0


class Controller:
    """What a CompositeController and a DecoratorController share: hooks, customize, reader."""

    kind = ""

    def __init__(
        self,
        api: KubeApi,
        manifest: Object,
        hooks_base: str,
        reader: Reader,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.api = api
        self.manifest = manifest
        self.name = str(manifest["metadata"]["name"])
        self.controller = stored_controller(api, manifest)
        self.hooks = Hooks(manifest, hooks_base, context)
        self.reader = reader
        self.customize = Customize(api, self.controller, self.hooks)

    @property
    def finalizer(self) -> str:
        return f"metacontroller.io/{self.kind.lower()}-{self.name}"

    @property
    def finalizer_enabled(self) -> bool:
        return self.hooks.has("finalize")

    def should_finalize(self, parent: Object) -> bool:
        """``finalizer.Manager.ShouldFinalize``."""
        finalizers = parent["metadata"].get("finalizers") or []
        if any(f in GC_FINALIZERS for f in finalizers):
            return False
        return self.finalizer in finalizers and self.finalizer_enabled

    def sync_finalizer(self, resource: Resource, parent: Object) -> Object:
        """``finalizer.Manager.SyncObject``: our finalizer there exactly when a finalize hook is."""
        if has_finalizer(parent, self.finalizer) == self.finalizer_enabled:
            return parent
        if self.finalizer_enabled:
            if deleting(parent):
                return parent
            return atomic_update(
                self.api, resource, parent, lambda o: _add_finalizer(o, self.finalizer)
            )
        return self.remove_finalizer(resource, parent)

    def remove_finalizer(self, resource: Resource, parent: Object) -> Object:
        return atomic_update(
            self.api, resource, parent, lambda o: _remove_finalizer(o, self.finalizer)
        )


def _add_finalizer(obj: Object, name: str) -> bool:
    finalizers = obj["metadata"].get("finalizers") or []
    if name in finalizers:
        return False
    obj["metadata"]["finalizers"] = [*finalizers, name]
    return True


def _remove_finalizer(obj: Object, name: str) -> bool:
    finalizers = obj["metadata"].get("finalizers") or []
    if name not in finalizers:
        return False
    obj["metadata"]["finalizers"] = [f for f in finalizers if f != name]
    return True


class CompositeController(Controller):
    """One CompositeController: its parent resource, child resources, and its sync."""

    kind = "CompositeController"

    def __init__(
        self,
        api: KubeApi,
        manifest: Object,
        hooks_base: str,
        reader: Reader,
        context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(api, manifest, hooks_base, reader, context)
        spec = manifest["spec"]
        rule = spec["parentResource"]
        self.parent_resource = api.resource(rule["apiVersion"], rule["resource"])
        self.parent_selector: dict[str, Any] | None = rule.get("labelSelector")
        self.child_rules: list[dict[str, Any]] = list(spec.get("childResources") or [])
        self.child_resources = [
            api.resource(c["apiVersion"], c["resource"]) for c in self.child_rules
        ]
        self.generate_selector = bool(spec.get("generateSelector"))
        self.ignore_status_changes = bool(rule.get("ignoreStatusChanges"))
        self.strategy = UpdateStrategy(api, self.child_rules)

    def selected(self, parent: Object) -> bool:
        """Matches ``parentResource.labelSelector`` (no selector: every parent)."""
        return self.parent_selector is None or selector_matches(
            self.parent_selector, parent["metadata"].get("labels")
        )

    def cares(self, parent: Object) -> bool:
        return has_finalizer(parent, self.finalizer) or self.selected(parent)

    def child_selector(self, parent: Object) -> dict[str, Any]:
        """``makeSelector``."""
        if self.generate_selector:
            return {"matchLabels": {CONTROLLER_UID: parent["metadata"]["uid"]}}
        selector = (parent.get("spec") or {}).get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            raise SyncError(
                ".spec.selector must have either matchLabels, matchExpressions, or both"
            )
        return dict(selector)

    def claim_children(self, parent: Object) -> dict[str, dict[str, Object]]:
        """``claimChildren``: claimed children by group and uniform key; adopts and releases."""
        selector = self.child_selector(parent)
        uid = parent["metadata"]["uid"]
        namespace = parent["metadata"].get("namespace") if self.parent_resource.namespaced else None
        can_adopt: list[str | None] = []
        errors: list[str] = []
        children: dict[str, dict[str, Object]] = {}

        def adoption_allowed() -> str | None:
            if not can_adopt:
                fresh = self.api.find(
                    self.parent_resource,
                    parent["metadata"].get("namespace"),
                    parent["metadata"]["name"],
                )
                if fresh is None or fresh["metadata"]["uid"] != uid:
                    can_adopt.append(f"original {uniform_key(parent)} is gone")
                elif deleting(fresh):
                    can_adopt.append(f"{uniform_key(parent)} has just been deleted")
                else:
                    can_adopt.append(None)
            return can_adopt[0]

        for rule, resource in zip(self.child_rules, self.child_resources, strict=True):
            group = children.setdefault(group_key(resource.kind, rule["apiVersion"]), {})
            for child in self.reader.list(resource, namespace):
                ref = controller_ref(child)
                matches = selector_matches(selector, child["metadata"].get("labels"))
                if ref is not None:
                    if ref.get("uid") != uid:
                        continue
                    if matches:
                        group[uniform_key(child)] = child
                        continue
                    if deleting(parent):
                        continue
                    try:
                        atomic_update(self.api, resource, child, lambda o: _drop_owner(o, uid))
                        log.info(
                            "released %s %s from %s",
                            resource.kind,
                            uniform_key(child),
                            uniform_key(parent),
                        )
                    except ApiError as error:
                        if not (error.not_found or error.gone):
                            errors.append(f"can't release {uniform_key(child)}: {error}")
                    continue
                if deleting(parent) or not matches or deleting(child):
                    continue
                refused = adoption_allowed()
                if refused:
                    errors.append(f"can't adopt {uniform_key(child)}: {refused}")
                    continue
                try:
                    atomic_update(
                        self.api,
                        resource,
                        child,
                        lambda o: _add_owner(o, make_controller_ref(parent)),
                    )
                    log.info(
                        "adopted %s %s into %s",
                        resource.kind,
                        uniform_key(child),
                        uniform_key(parent),
                    )
                    group[uniform_key(child)] = child
                except ApiError as error:
                    if not error.not_found:
                        errors.append(f"can't adopt {uniform_key(child)}: {error}")
        if errors:
            raise SyncError("can't claim children: " + "; ".join(errors))
        return children

    def request(self, parent: Object) -> Object:
        """The sync or finalize request Metacontroller would send for ``parent`` now
        (reads and claims, calls customize if its answer is not cached; no hook is called)."""
        children = self.claim_children(parent)
        related = self.customize.related(parent, self.reader, self.parent_resource.namespaced)
        return self._request(parent, children, related, self._finalizing(parent))

    def _finalizing(self, parent: Object) -> bool:
        return self.hooks.has("finalize") and (deleting(parent) or not self.selected(parent))

    def _request(
        self,
        parent: Object,
        children: dict[str, dict[str, Object]],
        related: dict[str, dict[str, Object]],
        finalizing: bool,
    ) -> Object:
        version = self.hooks.version("finalize" if finalizing else "sync")
        return {
            "controller": self.controller,
            "parent": parent,
            "children": keyed(parent, children, version),
            "related": keyed(parent, related, version),
            "finalizing": finalizing,
        }

    def sync(self, namespace: str | None, name: str) -> SyncOutcome:
        """One ``syncParentObject`` of the parent ``namespace/name``."""
        parent = self.reader.get(self.parent_resource, namespace, name)
        if parent is None or not self.cares(parent):
            return SyncOutcome(None)
        try:
            parent = self.sync_finalizer(self.parent_resource, parent)
        except ApiError as error:
            raise SyncError(f"can't sync finalizer for {uniform_key(parent)}: {error}") from None
        if not self.cares(parent):
            return SyncOutcome(None)
        children = self.claim_children(parent)
        related = self.customize.related(parent, self.reader, self.parent_resource.namespaced)
        finalizing = self._finalizing(parent)
        hook = "finalize" if finalizing else "sync"
        answer = self.hooks.call(
            hook, self._request(parent, children, related, finalizing), "composite"
        )
        desired = group_desired(parent, answer.get("children") or [])
        resync = float(answer.get("resyncAfterSeconds") or 0)
        if answer.get("finalized"):
            try:
                parent = self.remove_finalizer(self.parent_resource, parent)
            except ApiError as error:
                raise SyncError(
                    f"can't remove finalizer for {uniform_key(parent)}: {error}"
                ) from None
        selector = self.child_selector(parent)
        for objects in desired.values():
            for child in objects.values():
                labels = child["metadata"].get("labels") or {}
                if self.generate_selector and CONTROLLER_UID not in labels:
                    labels[CONTROLLER_UID] = parent["metadata"]["uid"]
                    child["metadata"]["labels"] = labels
                if not selector_matches(selector, labels):
                    raise SyncError(
                        f"labels on desired child {child['kind']} {uniform_key(child)} don't match parent selector"
                    )
        errors: list[str] = []
        if not deleting(parent) or self.should_finalize(parent):
            errors = manage_children(self.api, self.strategy, parent, children, desired)
        self.update_status(parent, answer.get("status"))
        if errors:
            raise SyncError(
                f"can't reconcile children for {uniform_key(parent)}: " + "; ".join(errors)
            )
        return SyncOutcome(answer, resync)

    def update_status(self, parent: Object, status: Object | None) -> None:
        """``updateParentStatus``: the whole status, plus observedGeneration, when it differs."""
        wanted = dict(status or {})
        wanted["observedGeneration"] = parent["metadata"].get("generation")

        def change(current: Object) -> bool:
            if current.get("status") == wanted:
                return False
            current["status"] = wanted
            return True

        try:
            atomic_update(self.api, self.parent_resource, parent, change, status=True)
        except ApiError as error:
            if not (error.not_found or error.conflict):
                raise SyncError(f"can't update status for {uniform_key(parent)}: {error}") from None


def _drop_owner(obj: Object, uid: str) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    kept = [r for r in refs if r.get("uid") != uid]
    obj["metadata"]["ownerReferences"] = kept
    return True


def _add_owner(obj: Object, ref: dict[str, Any]) -> bool:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
    obj["metadata"]["ownerReferences"] = [*refs, ref]
    return True


class DecoratorController(Controller):
    """One DecoratorController: its target resources, attachments, and its sync."""

    kind = "DecoratorController"

    def __init__(
        self,
        api: KubeApi,
        manifest: Object,
        hooks_base: str,
        reader: Reader,
        context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(api, manifest, hooks_base, reader, context)
        spec = manifest["spec"]
        self.resource_rules: list[dict[str, Any]] = list(spec["resources"])
        self.parent_resources = [
            api.resource(r["apiVersion"], r["resource"]) for r in self.resource_rules
        ]
        self.attachment_rules: list[dict[str, Any]] = list(spec.get("attachments") or [])
        self.attachment_resources = [
            api.resource(a["apiVersion"], a["resource"]) for a in self.attachment_rules
        ]
        self.strategy = UpdateStrategy(api, self.attachment_rules)

    def parent_resource_of(self, api_version: str, kind: str) -> Resource:
        for resource in self.parent_resources:
            if resource.api_version == api_version and resource.kind == kind:
                return resource
        raise SyncError(f"{kind} {api_version} is not a resource of {self.name}")

    def selected(self, parent: Object) -> bool:
        """``decoratorSelector.Matches``: a resource rule of the parent's kind whose label and
        annotation selectors both match."""
        meta = parent["metadata"]
        for rule, resource in zip(self.resource_rules, self.parent_resources, strict=True):
            if resource.kind != parent.get("kind") or resource.group != self.api_group(parent):
                continue
            if not selector_matches(rule.get("labelSelector"), meta.get("labels")):
                continue
            annotations = rule.get("annotationSelector")
            if annotations and not selector_matches(
                {
                    "matchLabels": annotations.get("matchAnnotations"),
                    "matchExpressions": annotations.get("matchExpressions"),
                },
                meta.get("annotations"),
            ):
                continue
            return True
        return False

    @staticmethod
    def api_group(obj: Object) -> str:
        api_version = str(obj.get("apiVersion") or "")
        return api_version.split("/", 1)[0] if "/" in api_version else ""

    def cares(self, parent: Object) -> bool:
        return self.selected(parent) or has_finalizer(parent, self.finalizer)

    def attachments(self, parent: Object) -> dict[str, dict[str, Object]]:
        """``getChildren``: what this decorator attached to ``parent``, every group present."""
        uid = parent["metadata"]["uid"]
        namespace = parent["metadata"].get("namespace") or None
        found: dict[str, dict[str, Object]] = {}
        for rule, resource in zip(self.attachment_rules, self.attachment_resources, strict=True):
            group = found.setdefault(group_key(resource.kind, rule["apiVersion"]), {})
            for obj in self.reader.list(resource, namespace):
                ref = controller_ref(obj)
                if ref is None or ref.get("uid") != uid:
                    continue
                if (obj["metadata"].get("annotations") or {}).get(
                    DECORATOR_ANNOTATION
                ) != self.name:
                    continue
                group[uniform_key(obj)] = obj
        return found

    def _finalizing(self, parent: Object) -> bool:
        return self.hooks.has("finalize") and (deleting(parent) or not self.selected(parent))

    def request(self, parent: Object) -> Object:
        """The sync or finalize request Metacontroller would send for ``parent`` now."""
        related = self.customize.related(
            parent, self.reader, bool(parent["metadata"].get("namespace"))
        )
        return self._request(parent, self.attachments(parent), related, self._finalizing(parent))

    def _request(
        self,
        parent: Object,
        attachments: dict[str, dict[str, Object]],
        related: dict[str, dict[str, Object]],
        finalizing: bool,
    ) -> Object:
        version = self.hooks.version("finalize" if finalizing else "sync")
        if version == "v2":
            root, children = DECORATOR_V2_FIELDS
        else:
            root, children = "object", "attachments"
        return {
            "controller": self.controller,
            root: parent,
            children: keyed(parent, attachments, version),
            "related": keyed(parent, related, version),
            "finalizing": finalizing,
        }

    def sync(self, api_version: str, kind: str, namespace: str | None, name: str) -> SyncOutcome:
        """One ``syncParentObject`` of the target ``namespace/name``."""
        resource = self.parent_resource_of(api_version, kind)
        parent = self.reader.get(resource, namespace, name)
        if parent is None or not self.cares(parent):
            return SyncOutcome(None)
        try:
            parent = self.sync_finalizer(resource, parent)
        except ApiError as error:
            raise SyncError(f"can't sync finalizer for {uniform_key(parent)}: {error}") from None
        if not self.cares(parent):
            return SyncOutcome(None)
        observed = self.attachments(parent)
        related = self.customize.related(parent, self.reader, resource.namespaced)
        finalizing = self._finalizing(parent)
        hook = "finalize" if finalizing else "sync"
        answer = self.hooks.call(
            hook, self._request(parent, observed, related, finalizing), "decorator"
        )
        desired = group_desired(parent, answer.get("attachments") or [])
        resync = float(answer.get("resyncAfterSeconds") or 0)
        if not self._update_parent(resource, parent, answer):
            return SyncOutcome(answer, resync)
        for objects in desired.values():
            for child in objects.values():
                annotations = child["metadata"].get("annotations") or {}
                annotations[DECORATOR_ANNOTATION] = self.name
                child["metadata"]["annotations"] = annotations
        if not deleting(parent) or self.should_finalize(parent):
            errors = manage_children(self.api, self.strategy, parent, observed, desired)
            if errors:
                raise SyncError(
                    f"can't reconcile children for {uniform_key(parent)}: " + "; ".join(errors)
                )
        return SyncOutcome(answer, resync)

    def _update_parent(self, resource: Resource, parent: Object, answer: Object) -> bool:
        """Labels, annotations, status and finalizer of the target; False when the update met
        NotFound or Conflict (the sync stops there, as Metacontroller's does)."""
        updated = copy.deepcopy(parent)
        meta = updated["metadata"]
        labels, annotations = dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})
        status = parent.get("status") if answer.get("status") is None else answer["status"]
        changed = _update_map(labels, answer.get("labels")) | _update_map(
            annotations, answer.get("annotations")
        )
        status_changed = status != parent.get("status")
        finalize = bool(answer.get("finalized")) and has_finalizer(parent, self.finalizer)
        if not (changed or status_changed or finalize):
            return True
        meta["labels"], meta["annotations"] = labels, annotations
        if status is not None:
            updated["status"] = status
        try:
            if status_changed and "status" in resource.subresources:
                result = self.api.update_status(resource, updated)
                meta["resourceVersion"] = result["metadata"]["resourceVersion"]
            if finalize:
                _remove_finalizer(updated, self.finalizer)
            self.api.update(resource, updated)
        except ApiError as error:
            if error.not_found or error.conflict:
                return False
            raise SyncError(f"can't update {uniform_key(parent)}: {error}") from None
        return True


def _update_map(dest: dict[str, str], updates: dict[str, str | None] | None) -> bool:
    changed = False
    for key, value in (updates or {}).items():
        if value is None:
            if key in dest:
                del dest[key]
                changed = True
        elif dest.get(key) != value:
            dest[key] = value
            changed = True
    return changed


# -- the one-shot steps -------------------------------------------------------------------------


class CompositeStep:
    """A CompositeController's syncs done by hand: each :meth:`sync` is one faithful
    ``syncParentObject`` reading the API server live, with the customize cache kept
    between calls (per parent uid and generation) as Metacontroller keeps it."""

    def __init__(
        self,
        plane: ControlPlane,
        hooks_base: str,
        controller: Object,
        *,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.plane = plane
        self.api = api_for(plane)
        self.composite = CompositeController(
            self.api, controller, hooks_base, LiveReader(self.api), context
        )
        self.controller = controller

    @property
    def finalizer(self) -> str:
        return self.composite.finalizer

    @property
    def hooks(self) -> Hooks:
        return self.composite.hooks

    def parent(self, namespace: str, name: str) -> Object:
        found = self.composite.reader.get(self.composite.parent_resource, namespace, name)
        assert found is not None, f"no {self.composite.parent_resource.kind} {namespace}/{name}"
        return found

    def request(self, parent: Object) -> Object:
        return self.composite.request(parent)

    def sync(self, namespace: str, name: str) -> Object:
        """One sync of ``namespace/name``; the hook's answer ({} when no hook was called).
        A sync Metacontroller would retry fails the test (SyncError)."""
        return self.composite.sync(namespace, name).answer or {}

    def add_finalizer(self, namespace: str, name: str) -> None:
        """What the first sync does before calling a hook (kept for the tests that say so)."""
        self.composite.sync_finalizer(self.composite.parent_resource, self.parent(namespace, name))


class DecoratorStep:
    """A DecoratorController's syncs done by hand, as :class:`CompositeStep`."""

    def __init__(
        self,
        plane: ControlPlane,
        hooks_base: str,
        controller: Object,
        *,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.plane = plane
        self.api = api_for(plane)
        self.decorator = DecoratorController(
            self.api, controller, hooks_base, LiveReader(self.api), context
        )

    @property
    def hooks(self) -> Hooks:
        return self.decorator.hooks

    def sync(self, api_version: str, kind: str, namespace: str | None, name: str) -> Object:
        return self.decorator.sync(api_version, kind, namespace, name).answer or {}


# -- stand-ins for what a real cluster runs besides Metacontroller ------------------------------


class GarbageCollectorStandIn:
    """What kube-controller-manager's garbage collector does to dependents, for a control plane
    that has none (issue 13 adds a real one): an object of the given resources whose owners
    are all gone is deleted (background propagation); one with some owners left loses the
    references to the gone ones. Nothing happens unless a test calls :meth:`collect` (or runs
    it in the loop with ``garbage_collector=``)."""

    def __init__(self, api: KubeApi, resources: Iterable[tuple[str, str]]) -> None:
        self.api = api
        self.resources = [api.resource(v, r) for v, r in resources]
        self.deleted: list[str] = []

    def _owner_exists(self, ref: dict[str, Any], namespace: str | None) -> bool:
        try:
            resource = self.api.resource_of_kind(ref["apiVersion"], ref["kind"])
        except ApiError:
            return False
        owner = self.api.find(resource, namespace if resource.namespaced else None, ref["name"])
        return owner is not None and owner["metadata"]["uid"] == ref["uid"]

    def collect(self) -> list[str]:
        """One pass; the ``Kind namespace/name`` of what it deleted."""
        deleted: list[str] = []
        for resource in self.resources:
            items, _ = self.api.list(resource)
            for obj in items:
                meta = obj["metadata"]
                refs = meta.get("ownerReferences") or []
                if not refs or deleting(obj):
                    continue
                alive = [r for r in refs if self._owner_exists(r, meta.get("namespace"))]
                if len(alive) == len(refs):
                    continue
                try:
                    if alive:
                        gone = {r["uid"] for r in refs} - {r["uid"] for r in alive}
                        atomic_update(
                            self.api, resource, obj, functools.partial(_drop_owners, uids=gone)
                        )
                    else:
                        self.api.delete(
                            resource, meta.get("namespace"), meta["name"], uid=meta["uid"]
                        )
                        deleted.append(f"{resource.kind} {uniform_key(obj)}")
                except ApiError as error:
                    if not (error.not_found or error.conflict):
                        raise
        self.deleted += deleted
        return deleted


def _drop_owners(obj: Object, uids: set[str]) -> bool:
    obj["metadata"]["ownerReferences"] = [
        r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") not in uids
    ]
    return True


def inject_ca_bundle(api: KubeApi, configuration: str, ca_pem: bytes) -> bool:
    """What cert-manager's CA injector does for ``cert-manager.io/inject-ca-from``: every
    webhook of the MutatingWebhookConfiguration gets ``clientConfig.caBundle``. True when it
    changed something."""
    resource = api.resource("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations")
    current = api.find(resource, None, configuration)
    if current is None:
        return False
    bundle = base64.b64encode(ca_pem).decode()

    def change(obj: Object) -> bool:
        changed = False
        for hook in obj.get("webhooks") or []:
            if hook.setdefault("clientConfig", {}).get("caBundle") != bundle:
                hook["clientConfig"]["caBundle"] = bundle
                changed = True
        return changed

    before = current["metadata"]["resourceVersion"]
    after = atomic_update(api, resource, current, change)
    return bool(after["metadata"]["resourceVersion"] != before)
