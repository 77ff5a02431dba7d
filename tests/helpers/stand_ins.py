"""What a real cluster runs besides Metacontroller, for the tests' control plane, which has
none of it: stand-ins, each doing only what its original does, and only when a test says so.

- :class:`GarbageCollectorStandIn`: kube-controller-manager's garbage collector (issue 13 adds
  the real one). Metacontroller leaves the children of a finalized parent to it.
- :func:`inject_ca_bundle`: cert-manager's CA injector (``cert-manager.io/inject-ca-from``).

The webhook keeps its tables from its own watches: no stand-in carries them. Each acts as its
original's identity where the install's admission policies look at it: the garbage collector's
client is ``collector_api_for(plane)``.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Iterable
from typing import Any

from tests.helpers.kubeapi import ApiError, KubeApi, Object
from tests.helpers.metacontroller_common import atomic_update, deleting, uniform_key

log = logging.getLogger("metacontroller-emulation")


class GarbageCollectorStandIn:
    """What kube-controller-manager's garbage collector does to dependents, for a control plane
    that has none (issue 13 adds a real one): an object of the given resources whose owners
    are all gone is deleted (background propagation); one with some owners left loses the
    references to the gone ones. Nothing happens unless a test calls :meth:`collect` (or runs
    it in the loop with ``garbage_collector=``). ``api`` must act as the garbage collector
    (``collector_api_for``): the admission policy spo-profile-configmaps lets only it and
    Metacontroller delete a profile's ConfigMap."""

    def __init__(self, api: KubeApi, resources: Iterable[tuple[str, str]]) -> None:
        self.api = api
        self.resources = [api.resource(v, r) for v, r in resources]
        self.deleted: list[str] = []
        """Everything deleted so far, in order."""
        self.errors: list[str] = []
        """Refusals met so far (other than NotFound and Conflict)."""
        self.lock = threading.Lock()

    def _owner_exists(
        self, ref: dict[str, Any], namespace: str | None, seen: dict[tuple[str, ...], bool]
    ) -> bool:
        key = (
            str(ref["apiVersion"]),
            str(ref["kind"]),
            namespace or "",
            str(ref["name"]),
            str(ref["uid"]),
        )
        if key not in seen:
            try:
                resource = self.api.resource_of_kind(ref["apiVersion"], ref["kind"])
            except ApiError:
                seen[key] = False
                return False
            owner = self.api.find(resource, namespace if resource.namespaced else None, ref["name"])
            seen[key] = owner is not None and owner["metadata"]["uid"] == ref["uid"]
        return seen[key]

    def collect(self) -> list[str]:
        """One pass (each owner looked up once); the ``Kind namespace/name`` of what it deleted.

        Each deletion is added to :attr:`deleted` as it is made (a test running the pass in
        the background may look while it goes on). A refusal other than NotFound or Conflict
        is logged and kept in :attr:`errors`, and the pass goes on, as the real collector
        retries an item later without stopping the others."""
        deleted: list[str] = []
        seen: dict[tuple[str, ...], bool] = {}
        for resource in self.resources:
            items, _ = self.api.list(resource)
            for obj in items:
                meta = obj["metadata"]
                refs = meta.get("ownerReferences") or []
                if not refs or deleting(obj):
                    continue
                alive = [r for r in refs if self._owner_exists(r, meta.get("namespace"), seen)]
                if len(alive) == len(refs):
                    continue
                what = f"{resource.kind} {uniform_key(obj)}"
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
                        deleted.append(what)
                        with self.lock:
                            self.deleted.append(what)
                except ApiError as error:
                    if not (error.not_found or error.conflict):
                        log.warning("garbage collector stand-in: %s: %s", what, error)
                        with self.lock:
                            self.errors.append(f"{what}: {error}")
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
