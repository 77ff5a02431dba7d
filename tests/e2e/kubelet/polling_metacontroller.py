"""A stand-in for Metacontroller during the node tests: a polling loop in a background thread.

Metacontroller cannot be built from the registries here, so its part is
emulated, as in the other e2e tests (``metacontroller_step.py``), but
continuously: every ``interval`` seconds, for every CompositeController and
DecoratorController of ``metacontroller/base/``, it lists the parents, their
children (by controller owner reference) and the related objects the customize
hook asks for, and when what a parent's request would carry changed (or the
hook asked for a resync), it calls the hook **through the hooks Service**, as
Metacontroller does in a cluster (the Service's ClusterIP, reached through
kube-proxy), applies the answered children server-side with the parent as
controller owner, deletes the observed children the answer left out, writes the
answered status and handles Metacontroller's finalizer.

What it does not do as Metacontroller does (the faithful, watch-driven loop is
issue [4/6]'s; swap it in here): it polls instead of watching, applies with
server-side apply instead of Metacontroller's client-side three-way merge, and
ignores update strategies (children are updated in place). Deleting a parent
leaves the children to the garbage collector, which runs here
(kube-controller-manager).
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_common import selector_matches
from tests.helpers.metacontroller_step import _group

LOG = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]
FIELD_MANAGER = "metacontroller"
Object = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


# Who Metacontroller is (tests/e2e/data/metacontroller-identity.yaml): the install's admission
# policies let only it write the profiles' ConfigMaps and node statuses.
METACONTROLLER_USER = "system:serviceaccount:metacontroller:metacontroller"


class Api:
    """Just enough of the Kubernetes API over HTTPS, as Metacontroller's ServiceAccount (the
    admin, impersonating it)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.server = plane.server
        self.context: ssl.SSLContext = plane.ssl_context()
        # apiVersion -> kind -> (plural, namespaced)
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type, "Impersonate-User": METACONTROLLER_USER},
        )
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                raise ApiError(error.code, error.read().decode(errors="replace")) from None

    @staticmethod
    def base(api_version: str) -> str:
        return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"

    def path(
        self, api_version: str, resource: str, namespace: str | None = None, name: str = ""
    ) -> str:
        ns = f"/namespaces/{namespace}" if namespace else ""
        return f"{self.base(api_version)}{ns}/{resource}" + (f"/{name}" if name else "")

    def list(
        self,
        api_version: str,
        resource: str,
        namespace: str | None = None,
        selector: Object | None = None,
    ) -> list[Object]:
        query = {}
        if selector and selector.get("matchLabels"):
            query["labelSelector"] = ",".join(
                f"{k}={v}" for k, v in selector["matchLabels"].items()
            )
        path = self.path(api_version, resource, namespace) + (
            "?" + urlencode(query) if query else ""
        )
        answer = self.request("GET", path)
        kind = answer["kind"].removesuffix("List")
        for item in answer["items"]:  # a list's items carry neither
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(answer["items"])

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from discovery."""
        if api_version not in self._resources:
            found = self.request("GET", self.base(api_version))["resources"]
            self._resources[api_version] = {
                r["kind"]: (r["name"], bool(r["namespaced"])) for r in found if "/" not in r["name"]
            }
        return self._resources[api_version][kind]

    def object_path(self, obj: Object) -> str:
        plural, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if namespaced else None
        return self.path(obj["apiVersion"], plural, namespace, obj["metadata"]["name"])

    def apply(self, obj: Object) -> Object:
        query = urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
        return dict(
            self.request(
                "PATCH", f"{self.object_path(obj)}?{query}", obj, "application/apply-patch+yaml"
            )
        )

    def delete(self, obj: Object) -> None:
        try:
            self.request("DELETE", self.object_path(obj), {"propagationPolicy": "Background"})
        except ApiError as error:
            if error.status != 404:
                raise

    def merge_patch(self, obj: Object, patch: Object) -> Object:
        return dict(
            self.request("PATCH", self.object_path(obj), patch, "application/merge-patch+json")
        )

    def replace_status(self, obj: Object) -> None:
        self.request("PUT", self.object_path(obj) + "/status", obj)


def controllers(folder: Path = REPO / "metacontroller" / "base") -> list[Object]:
    """Every CompositeController and DecoratorController of the install."""
    found = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("CompositeController", "DecoratorController"):
                found.append(doc)
    return found


def _fingerprint(request: Object) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _owned_by(obj: Object, uid: str) -> bool:
    owners = obj["metadata"].get("ownerReferences") or []
    return any(o.get("controller") and o.get("uid") == uid for o in owners)


@dataclass
class _Seen:
    fingerprint: str = ""
    resync_at: float = 0.0


@dataclass
class PollingMetacontroller:
    """Start with ``start()``, stop with ``stop()``; ``errors`` keeps what went wrong
    (hook errors are retried on the next pass, as Metacontroller retries)."""

    plane: ControlPlane
    interval: float = 1.0
    manifests: list[Object] = field(default_factory=controllers)
    errors: list[str] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        self.api = Api(self.plane)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._customized: dict[tuple[str, str, int], list[Object]] = {}
        self._services: dict[tuple[str, str], str] = {}
        self.passes = 0

    # ------------------------------------------------------------ thread

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="polling-metacontroller", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.sync_all()
            except Exception as exc:
                self._error(f"pass failed: {exc!r}")
            self.passes += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def _error(self, message: str) -> None:
        LOG.warning("%s", message)
        self.errors.append(message)
        del self.errors[:-200]

    def wait_passes(self, count: int = 2, timeout: float = 120.0) -> None:
        """Until ``count`` more full passes are done (everything changed so far was seen)."""
        target = self.passes + count
        deadline = time.monotonic() + timeout
        while self.passes < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the polling loop did not pass {count} times in {timeout}s")
            time.sleep(0.1)

    # ------------------------------------------------------------ hooks

    def _hook_url(self, controller: Object, hook: str) -> str | None:
        spec = controller["spec"]["hooks"].get(hook)
        if spec is None:
            return None
        url = urlsplit(spec["webhook"]["url"])
        service, _, namespace = (url.hostname or "").partition(".")
        key = (namespace or "default", service)
        if key not in self._services:
            svc = self.api.request("GET", f"/api/v1/namespaces/{key[0]}/services/{key[1]}")
            self._services[key] = svc["spec"]["clusterIP"]
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{url.scheme}://{self._services[key]}:{port}{url.path}"

    def _call(self, controller: Object, hook: str, body: Object) -> Object:
        url = self._hook_url(controller, hook)
        assert url is not None
        req = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                raise RuntimeError(
                    f"{controller['metadata']['name']} {hook} answered {error.code}:"
                    f" {error.read()[:300]!r}"
                ) from None

    def _related(
        self, controller: Object, parent: Object, lists: dict[str, list[Object]]
    ) -> list[Object]:
        if "customize" not in controller["spec"]["hooks"]:
            return []
        meta = parent["metadata"]
        key = (controller["metadata"]["name"], meta["uid"], int(meta.get("generation") or 0))
        if key not in self._customized:
            answer = self._call(
                controller, "customize", {"controller": controller, "parent": parent}
            )
            self._customized[key] = list(answer.get("relatedResources") or [])
        related: list[Object] = []
        for rule in self._customized[key]:
            cache_key = json.dumps(rule, sort_keys=True)
            if cache_key not in lists:
                lists[cache_key] = self.api.list(
                    rule["apiVersion"],
                    rule["resource"],
                    rule.get("namespace"),
                    rule.get("labelSelector"),
                )
            items = lists[cache_key]
            if rule.get("names"):
                items = [i for i in items if i["metadata"]["name"] in rule["names"]]
            related += items
        return related

    # ------------------------------------------------------------ passes

    def sync_all(self) -> None:
        lists: dict[str, list[Object]] = {}  # one list per resource per pass
        for controller in self.manifests:
            try:
                if controller["kind"] == "CompositeController":
                    self._sync_composite(controller, lists)
                else:
                    self._sync_decorator(controller, lists)
            except (ApiError, RuntimeError, OSError) as exc:
                self._error(f"{controller['metadata']['name']}: {exc}")

    def _changed(self, key: tuple[str, str], request: Object) -> bool:
        seen = self._seen.get(key)
        return (
            seen is None
            or seen.fingerprint != _fingerprint(request)
            or (0 < seen.resync_at <= time.monotonic())
        )

    def _done(self, key: tuple[str, str], request: Object, answer: Object) -> None:
        after = answer.get("resyncAfterSeconds") or 0
        self._seen[key] = _Seen(_fingerprint(request), time.monotonic() + after if after else 0.0)

    def _sync_composite(self, controller: Object, lists: dict[str, list[Object]]) -> None:
        spec = controller["spec"]
        rule = spec["parentResource"]
        finalizer = f"metacontroller.io/compositecontroller-{controller['metadata']['name']}"
        children_all: list[Object] = []
        for child_rule in spec.get("childResources") or []:
            children_all += self.api.list(child_rule["apiVersion"], child_rule["resource"])
        for parent in self.api.list(rule["apiVersion"], rule["resource"]):
            meta = parent["metadata"]
            # parentResource.labelSelector: a parent that leaves it is finalized, as deleted.
            selected = selector_matches(rule.get("labelSelector"), meta.get("labels"))
            if not selected and finalizer not in (meta.get("finalizers") or []):
                continue
            finalizing = bool(meta.get("deletionTimestamp")) or not selected
            has_finalize = "finalize" in spec["hooks"]
            if has_finalize and not finalizing and finalizer not in (meta.get("finalizers") or []):
                self.api.merge_patch(
                    parent,
                    {"metadata": {"finalizers": [*(meta.get("finalizers") or []), finalizer]}},
                )
                continue  # the next pass sees the new version
            if finalizing and finalizer not in (meta.get("finalizers") or []):
                continue
            try:
                self._sync_parent(controller, parent, children_all, lists, finalizer, finalizing)
            except (ApiError, RuntimeError, OSError) as exc:
                self._error(
                    f"{controller['metadata']['name']} {meta.get('namespace')}/{meta['name']}: "
                    f"{exc}"
                )

    def _sync_parent(
        self,
        controller: Object,
        parent: Object,
        children_all: list[Object],
        lists: dict[str, list[Object]],
        finalizer: str,
        finalizing: bool,
    ) -> None:
        meta = parent["metadata"]
        children = [c for c in children_all if _owned_by(c, meta["uid"])]
        request = {
            "controller": controller,
            "parent": parent,
            "children": _group(children),
            "related": _group(self._related(controller, parent, lists)),
            "finalizing": finalizing,
        }
        key = (controller["metadata"]["name"], meta["uid"])
        if not self._changed(key, request):
            return
        answer = self._call(controller, "finalize" if finalizing else "sync", request)
        owner = {
            "apiVersion": parent["apiVersion"],
            "kind": parent["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        desired = self._apply_children(answer.get("children") or [], owner, meta.get("namespace"))
        self._delete_others(children, desired)
        status = answer.get("status")
        if status is not None:
            wanted = {**status, "observedGeneration": meta.get("generation")}
            if parent.get("status") != wanted:
                self.api.replace_status({**parent, "status": wanted})
        if finalizing and answer.get("finalized"):
            current = self.api.request("GET", self.api.object_path(parent))
            kept = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
            self.api.merge_patch(
                parent,
                {
                    "metadata": {
                        "finalizers": kept or None,
                        "resourceVersion": current["metadata"]["resourceVersion"],
                    }
                },
            )
        self._done(key, request, answer)

    def _apply_children(
        self, answered: Iterable[Object], owner: Object, namespace: str | None
    ) -> set[tuple[str, str, str]]:
        desired = set()
        for item in answered:
            child = json.loads(json.dumps(item))
            _, namespaced = self.api.resource(child["apiVersion"], child["kind"])
            if namespaced and namespace:
                child["metadata"].setdefault("namespace", namespace)
            child["metadata"]["ownerReferences"] = [owner]
            self.api.apply(child)
            desired.add(
                (child["kind"], child["metadata"].get("namespace", ""), child["metadata"]["name"])
            )
        return desired

    def _delete_others(
        self, observed: Iterable[Object], desired: set[tuple[str, str, str]]
    ) -> None:
        for child in observed:
            meta = child["metadata"]
            if (child["kind"], meta.get("namespace", ""), meta["name"]) not in desired:
                self.api.delete(child)

    def _sync_decorator(self, controller: Object, lists: dict[str, list[Object]]) -> None:
        spec = controller["spec"]
        attachments_all: list[Object] = []
        for rule in spec.get("attachments") or []:
            attachments_all += self.api.list(rule["apiVersion"], rule["resource"])
        for rule in spec["resources"]:
            for target in self.api.list(
                rule["apiVersion"], rule["resource"], None, rule.get("labelSelector")
            ):
                meta = target["metadata"]
                attachments = [a for a in attachments_all if _owned_by(a, meta["uid"])]
                request = {
                    "controller": controller,
                    "object": target,
                    "attachments": _group(attachments),
                    "related": _group(self._related(controller, target, lists)),
                    "finalizing": False,
                }
                key = (controller["metadata"]["name"], meta["uid"])
                if not self._changed(key, request):
                    continue
                answer = self._call(controller, "sync", request)
                owner = {
                    "apiVersion": target["apiVersion"],
                    "kind": target["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
                desired = self._apply_children(
                    answer.get("attachments") or [], owner, meta.get("namespace") or meta["name"]
                )
                self._delete_others(attachments, desired)
                patch = {k: answer[k] for k in ("labels", "annotations") if answer.get(k)}
                if patch:
                    self.api.merge_patch(target, {"metadata": patch})
                self._done(key, request, answer)
