"""What Metacontroller's CompositeController and DecoratorController emulations share
(``metacontroller_step``): keys and selectors, reads, hook calls, the customize hook and
related objects, and ``ManageChildren``; the facts they follow are in the docstring of
``metacontroller_step``.
"""

from __future__ import annotations

import copy
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from tests.helpers.controlplane import ControlPlane
from tests.helpers.kubeapi import ApiError, Identity, KubeApi, Object, Resource
from tests.helpers.metacontroller_apply import apply_update, for_create

log = logging.getLogger("metacontroller-emulation")

USER_AGENT = "metacontroller/v4.17.2 (linux/amd64) emulated-by-tests"
METACONTROLLER = Identity.service_account("metacontroller", "metacontroller")
"""Who Metacontroller is in a cluster installed with its own manifests
(tests/e2e/data/metacontroller-identity.yaml): every request of the emulation is made as it."""
GARBAGE_COLLECTOR = Identity.service_account("kube-system", "generic-garbage-collector")
"""kube-controller-manager's garbage collector (its own ServiceAccount and RBAC role)."""
CONTROLLER_UID = "controller-uid"
GC_FINALIZERS = ("foregroundDeletion", "orphan")
HOOK_TIMEOUT = 10.0

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


_CLIENTS: weakref.WeakKeyDictionary[ControlPlane, dict[str, KubeApi]] = weakref.WeakKeyDictionary()


def api_for(plane: ControlPlane) -> KubeApi:
    """The client of ``plane``'s API server acting as Metacontroller's ServiceAccount (by
    impersonation; Metacontroller's user agent), one per control plane; its connections close
    when the control plane stops. Needs the ``installed`` fixture's identity manifest."""
    return _client(plane, "metacontroller_api", METACONTROLLER, USER_AGENT)


def collector_api_for(plane: ControlPlane) -> KubeApi:
    """The client acting as kube-controller-manager's garbage collector."""
    return _client(plane, "collector_api", GARBAGE_COLLECTOR, "kube-controller-manager/e2e")


def admin_api_for(plane: ControlPlane) -> KubeApi:
    """The client acting as the control plane's admin (what a test does itself)."""
    return _client(plane, "admin_api", None, "spo-e2e")


def _client(plane: ControlPlane, slot: str, identity: Identity | None, agent: str) -> KubeApi:
    clients = _CLIENTS.setdefault(plane, {})
    api = clients.get(slot)
    if api is None:
        api = KubeApi(plane.server, plane.ssl_context(), user_agent=agent, identity=identity)
        clients[slot] = api
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
    """The customize hook's answers, cached per (parent uid, generation), and the related
    objects."""

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
        """The related objects of ``parent`` by group, then by uniform key (every rule's group
        present)."""
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
                        f"requested related object namespace {namespace} differs from parent"
                        f" object namespace {parent_namespace}"
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
