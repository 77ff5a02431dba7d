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
``decorator/api/v2/hooks.go`` ``DecoratorHookRequest``: ``controller``, ``parent``,
``children``, ``related``, ``finalizing``; v1: ``object``, ``attachments``); the answer's
``labels`` and ``annotations`` are merged into the parent (null deletes a key), a null
``status`` leaves it alone; every desired attachment gets the annotation above, then
``ManageChildren`` as for a composite (no ``controller-uid`` label).

Every request of the emulation is made as Metacontroller's ServiceAccount (``api_for``: by
impersonation), the only identity the admission policy spo-profile-configmaps lets write
the profile ConfigMaps.
"""

from __future__ import annotations

import copy
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from tests.helpers.controlplane import ControlPlane
from tests.helpers.kubeapi import ApiError, KubeApi, Object, Resource
from tests.helpers.metacontroller_common import (
    CONTROLLER_UID,
    GC_FINALIZERS,
    Customize,
    Hooks,
    LiveReader,
    Reader,
    SyncError,
    UpdateStrategy,
    api_for,
    atomic_update,
    controller_ref,
    deleting,
    group_desired,
    group_key,
    has_finalizer,
    keyed,
    make_controller_ref,
    manage_children,
    selector_matches,
    stored_controller,
    uniform_key,
)

__all__ = [
    "CONTROLLER_UID",
    "CompositeController",
    "CompositeStep",
    "DecoratorController",
    "DecoratorStep",
    "SyncError",
    "api_for",
]

log = logging.getLogger("metacontroller-emulation")

DECORATOR_ANNOTATION = "metacontroller.k8s.io/decorator-controller"
DECORATOR_V2_FIELDS = ("parent", "children")
"""The target and attachments fields of a v2 DecoratorController request."""

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
                        f"labels on desired child {child['kind']} {uniform_key(child)}"
                        " don't match parent selector"
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
