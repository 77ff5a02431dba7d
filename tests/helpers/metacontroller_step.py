"""One Metacontroller sync, done by hand against the real API server.

Nothing in the product loops; the tests do, one step at a time, what
Metacontroller does for a CompositeController (v4, hook version v2):

1. read the parent; POST ``{controller, parent}`` to the customize hook;
2. list every related resource rule (keys ``namespace/name``) and the observed
   children (objects of the child resources owned by the parent);
3. POST ``{controller, parent, children, related, finalizing}`` to the sync
   hook, or the finalize hook when the parent is being deleted;
4. server-side apply each desired child with the parent as its controller
   owner, delete observed children the answer left out, and write the
   answered status (plus ``observedGeneration``) to the status subresource;
5. when finalize answers ``finalized: true``, remove Metacontroller's finalizer.

Every write is made as Metacontroller's ServiceAccount (``METACONTROLLER``, by
impersonation), the only identity the admission policy spo-profile-configmaps
lets write the profile ConfigMaps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.helpers.controlplane import METACONTROLLER, ControlPlane
from tests.helpers.hookserver import post

FIELD_MANAGER = "metacontroller"


def _resource_arg(api_version: str, resource: str) -> str:
    """``resource.version.group`` as kubectl takes it (``configmaps`` for core v1)."""
    if "/" not in api_version:
        return f"{resource}.{api_version}" if api_version != "v1" else resource
    group, version = api_version.split("/", 1)
    return f"{resource}.{version}.{group}"


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}" if meta.get("namespace") else meta["name"]


def _group(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for obj in objects:
        grouped.setdefault(f"{obj['kind']}.{obj['apiVersion']}", {})[_key(obj)] = obj
    return grouped


@dataclass
class CompositeStep:
    plane: ControlPlane
    hooks_base: str  # where `spo hooks` listens, instead of the in-cluster Service
    controller: dict[str, Any]  # the CompositeController manifest from metacontroller/

    @property
    def finalizer(self) -> str:
        return f"metacontroller.io/compositecontroller-{self.controller['metadata']['name']}"

    def _url(self, hook: str) -> str:
        path = urlsplit(self.controller["spec"]["hooks"][hook]["webhook"]["url"]).path
        return self.hooks_base + path

    def _call(self, hook: str, body: dict[str, Any]) -> dict[str, Any]:
        code, answer = post(self._url(hook), json.dumps(body).encode())
        assert code == 200, f"{hook} hook answered {code}: {answer}"
        return dict(answer)

    def parent(self, namespace: str, name: str) -> dict[str, Any]:
        rule = self.controller["spec"]["parentResource"]
        return dict(
            self.plane.kubectl_json(
                "get", _resource_arg(rule["apiVersion"], rule["resource"]), name, "-n", namespace
            )
        )

    def _list(
        self,
        api_version: str,
        resource: str,
        namespace: str | None,
        selector: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        args = ["get", _resource_arg(api_version, resource)]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        if selector and selector.get("matchLabels"):
            args += ["-l", ",".join(f"{k}={v}" for k, v in selector["matchLabels"].items())]
        return list(self.plane.kubectl_json(*args)["items"])

    def request(self, parent: dict[str, Any]) -> dict[str, Any]:
        """The sync/finalize request Metacontroller would send for ``parent`` now."""
        namespace = parent["metadata"]["namespace"]
        related: list[dict[str, Any]] = []
        if "customize" in self.controller["spec"]["hooks"]:
            rules = (
                self._call("customize", {"controller": self.controller, "parent": parent}).get(
                    "relatedResources"
                )
                or []
            )
            for rule in rules:
                items = self._list(
                    rule["apiVersion"],
                    rule["resource"],
                    rule.get("namespace"),
                    rule.get("labelSelector"),
                )
                if rule.get("names"):
                    items = [i for i in items if i["metadata"]["name"] in rule["names"]]
                related += items
        children = []
        for rule in self.controller["spec"]["childResources"]:
            for item in self._list(rule["apiVersion"], rule["resource"], namespace, None):
                owners = item["metadata"].get("ownerReferences") or []
                if any(
                    o.get("controller") and o["uid"] == parent["metadata"]["uid"] for o in owners
                ):
                    children.append(item)
        return {
            "controller": self.controller,
            "parent": parent,
            "children": _group(children),
            "related": _group(related),
            "finalizing": bool(parent["metadata"].get("deletionTimestamp")),
        }

    def sync(self, namespace: str, name: str) -> dict[str, Any]:
        """One full step for one parent; returns the hook's answer."""
        parent = self.parent(namespace, name)
        request = self.request(parent)
        finalizing = request["finalizing"]
        answer = self._call("finalize" if finalizing else "sync", request)
        owner = {
            "apiVersion": parent["apiVersion"],
            "kind": parent["kind"],
            "name": name,
            "uid": parent["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        desired = set()
        for answered in answer.get("children") or []:
            child = json.loads(json.dumps(answered))
            child["metadata"].setdefault("namespace", namespace)
            child["metadata"]["ownerReferences"] = [owner]
            desired.add((child["kind"], child["metadata"]["name"]))
            self.plane.kubectl(
                "apply",
                "--server-side",
                f"--field-manager={FIELD_MANAGER}",
                "--force-conflicts",
                *METACONTROLLER,
                "-f",
                "-",
                input=json.dumps(child),
            )
        for group in request["children"].values():
            for child in group.values():
                if (child["kind"], child["metadata"]["name"]) not in desired:
                    self.plane.kubectl(
                        "delete",
                        child["kind"].lower(),
                        child["metadata"]["name"],
                        "-n",
                        namespace,
                        *METACONTROLLER,
                    )
        if answer.get("status") is not None:
            parent["status"] = {
                **answer["status"],
                "observedGeneration": parent["metadata"].get("generation"),
            }
            self.plane.kubectl(
                "replace",
                "--subresource=status",
                *METACONTROLLER,
                "-f",
                "-",
                input=json.dumps(parent),
            )
        if finalizing and answer.get("finalized"):
            current = self.parent(namespace, name)
            kept = [f for f in current["metadata"].get("finalizers") or [] if f != self.finalizer]
            patch = json.dumps(
                {
                    "metadata": {
                        "finalizers": kept or None,
                        "resourceVersion": current["metadata"]["resourceVersion"],
                    }
                }
            )
            rule = self.controller["spec"]["parentResource"]
            self.plane.kubectl(
                "patch",
                _resource_arg(rule["apiVersion"], rule["resource"]),
                name,
                "-n",
                namespace,
                "--type=merge",
                "-p",
                patch,
                *METACONTROLLER,
            )
        return answer

    def add_finalizer(self, namespace: str, name: str) -> None:
        """What Metacontroller does first for a controller with a finalize hook."""
        rule = self.controller["spec"]["parentResource"]
        patch = json.dumps({"metadata": {"finalizers": [self.finalizer]}})
        self.plane.kubectl(
            "patch",
            _resource_arg(rule["apiVersion"], rule["resource"]),
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            patch,
            *METACONTROLLER,
        )
