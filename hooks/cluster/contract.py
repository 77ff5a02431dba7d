"""Metacontroller's hook contract: the JSON documents it POSTs and expects back.

Modelled after Metacontroller's documentation (CompositeController sync and
finalize hooks, the customize hook). Maps of observed objects are keyed by
``Kind.apiVersion`` (``ConfigMap.v1``) and then by object name (v1 hooks) or
``namespace/name`` (v2 hooks); the functions here read objects out of them
without caring which, because every object carries its own metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, ValidationError, model_validator

from hooks.api.base import Object, Open, Wire
from hooks.api.objectshapes import check_groups, check_object

# Kept as plain dictionaries (validated one level deep): related objects can be
# thousands of node statuses and pods, and each hook reads only what it needs.
ObjectMap = dict[str, dict[str, Any]]

LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"
"""Where Metacontroller keeps the child it last applied (the hook's own earlier answer)."""
_OWNED_METADATA = ("name", "namespace", "labels", "annotations")

CONFIGMAP = "ConfigMap.v1"
POD = "Pod.v1"
MISSING_CHILD_RESYNC_SECONDS = 2.0
"""How soon a parent is synced again while a child it asked for in an earlier sync is missing."""


def group_key(kind: str, api_version: str) -> str:
    """The key of a kind in ``children``/``related``: ``Kind.apiVersion``."""
    return f"{kind}.{api_version}"


class SyncRequest(Open):
    """A CompositeController sync or finalize request."""

    controller: Object = Field(default_factory=dict)
    parent: Object
    children: ObjectMap | None = None
    related: ObjectMap | None = None
    finalizing: bool = False

    @model_validator(mode="after")
    def _shaped(self) -> SyncRequest:
        check_object(self.parent, "parent")
        check_groups(self.children, "children")
        check_groups(self.related, "related")
        return self

    def children_of(self, key: str) -> list[Object]:
        return _objects(self.children, key)

    def related_of(self, key: str) -> list[Object]:
        return _objects(self.related, key)


class SyncResponse(Wire):
    """What a sync or finalize hook answers. ``children`` is the complete desired set."""

    status: Object | None = None
    children: list[Object] = Field(default_factory=list)
    resyncAfterSeconds: float | None = None
    finalized: bool | None = None


class CustomizeRequest(Open):
    controller: Object = Field(default_factory=dict)
    parent: Object

    @model_validator(mode="after")
    def _shaped(self) -> CustomizeRequest:
        check_object(self.parent, "parent")
        return self


class LabelSelector(Wire):
    matchLabels: dict[str, str] | None = None


class ResourceRule(Wire):
    """One class of related objects the sync hook wants to receive."""

    apiVersion: str
    resource: str
    namespace: str | None = None
    names: list[str] | None = None
    labelSelector: LabelSelector | None = None


class CustomizeResponse(Wire):
    relatedResources: list[ResourceRule] = Field(default_factory=list)


def _objects(groups: ObjectMap | None, key: str) -> list[Object]:
    if not groups:
        return []
    found = groups.get(key) or {}
    return [found[name] for name in sorted(found)]


def iter_objects(groups: ObjectMap | None) -> Iterator[Object]:
    for key in sorted(groups or {}):
        yield from _objects(groups, key)


def last_applied(observed: Object) -> Object | None:
    """The child as Metacontroller last applied it (the hook's own earlier answer), if it says."""
    annotations = (observed.get("metadata") or {}).get("annotations") or {}
    try:
        applied = json.loads(annotations.get(LAST_APPLIED) or "null")
    except ValueError:
        return None
    return applied if isinstance(applied, dict) else None


def unchanged(observed: Object, body: tuple[str, ...]) -> Object:
    """An observed child as an answer that changes nothing (to keep what nodes rely on).

    That is what Metacontroller last applied, when it recorded it; otherwise the
    observed object reduced to the fields we own (``body`` and some metadata),
    never with Metacontroller's own annotation, which would otherwise be nested
    into itself on every sync.
    """
    meta = observed.get("metadata") or {}
    applied = last_applied(observed)
    if applied is not None and all(
        isinstance(applied.get(field), dict) for field in body if field in observed
    ):
        return applied
    owned: dict[str, Any] = {key: meta[key] for key in _OWNED_METADATA if key in meta}
    annotations = {
        k: v for k, v in (owned.pop("annotations", None) or {}).items() if k != LAST_APPLIED
    }
    if annotations:
        owned["annotations"] = annotations
    return {
        "apiVersion": observed.get("apiVersion"),
        "kind": observed.get("kind"),
        "metadata": owned,
        **{field: observed[field] for field in body if field in observed},
    }


M = TypeVar("M", bound=BaseModel)


class ByName(Mapping[str, M], Generic[M]):
    """Related objects by name, each parsed into ``model`` only when looked up (a namespace
    can hold hundreds and a hook needs a few); one that does not parse counts as missing."""

    def __init__(
        self, objects: list[Object], model: type[M], check: Callable[[Object], None] | None = None
    ) -> None:
        self._model = model
        self._check = check
        self._raw: dict[str, Object] = {}
        for raw in objects:
            self._raw.setdefault((raw.get("metadata") or {}).get("name", ""), raw)

    def __getitem__(self, name: str) -> M:
        raw = self._raw[name]
        if self._check is not None:
            self._check(raw)  # may raise: what the hook must answer about that object
        try:
            return self._model.model_validate(raw)
        except ValidationError as error:
            raise KeyError(name) from error

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def child_named(request: SyncRequest, key: str, name: str) -> Object | None:
    """The observed child of group ``key`` (``ConfigMap.v1``) named ``name``, if any."""
    return next(
        (c for c in request.children_of(key) if (c.get("metadata") or {}).get("name") == name), None
    )


def missing_child_resync(request: SyncRequest, children: list[Object]) -> float | None:
    """A resync delay when a child the answer asks for is still not observed after an earlier
    sync, else None.

    Metacontroller creates a missing child and swallows AlreadyExists
    (``pkg/controller/common/manage_children.go``, ``updateChildren``). A parent deleted and
    created again under the same name leaves its predecessor's child (owned by the old uid, so
    claimed by nobody) until the garbage collector deletes it, and that deletion enqueues no
    parent: the child's controller reference resolves to no parent of that uid
    (``pkg/controller/composite/controller.go``, ``onChildDelete``). Without a resync the new
    parent would wait for an unrelated event to get its child. A parent has been synced before
    when it has ``status.observedGeneration``, which Metacontroller adds to every status it
    writes (``updateParentStatus``); on the first sync a child is missing as a matter of course.
    """
    if "observedGeneration" not in (request.parent.get("status") or {}):
        return None
    for child in children:
        key = group_key(str(child.get("kind")), str(child.get("apiVersion")))
        if child_named(request, key, (child.get("metadata") or {}).get("name", "")) is None:
            return MISSING_CHILD_RESYNC_SECONDS
    return None
