"""SeccompProfiles per second through the real kube-apiserver and the real hook server.

Each round trip is what Metacontroller does for one parent, over HTTP(S) with
keep-alive connections, no kubectl: GET the parent, POST customize, LIST the
related node statuses, pods and profiles, LIST the ConfigMaps, POST sync,
(lists with ``resourceVersion=0``, served from the API server's watch cache,
as Metacontroller reads from its informers' caches rather than etcd),
server-side APPLY the ConfigMap, PUT the status. The baseline, measured in the
same run, is the hook alone: the same sync requests POSTed straight to the hook
server (the foundation benchmark's figure, on this run's requests). Also prints
how long the control plane took to start with cached binaries.

    .venv/bin/python -m bench.bench_roundtrip [--profiles 200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tests.helpers.controlplane import ControlPlane, ensure_binaries
from tests.helpers.hookserver import running_hooks

ROOT = Path(__file__).resolve().parent.parent

GROUP = "security-profiles-operator.x-k8s.io"
NS = "bench"
CONTROLLER = {"metadata": {"name": "seccompprofile-controller"}}


class Client:
    """One keep-alive connection, JSON in and out."""

    def __init__(self, base: str, context: Any = None) -> None:
        parts = urlsplit(base)
        if parts.scheme == "https":
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, context=context
            )
        else:
            self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port)

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        for _ in range(30):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closed the idle keep-alive connection (gunicorn does after 2 s,
                # e.g. while the API server answers 429 in the warm-up): a new connection.
                self.conn.close()
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
            raw = response.read()
            if response.status != 429:  # "storage is (re)initializing" right after a CRD appears
                break
            time.sleep(float(response.getheader("Retry-After") or 1))
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:300]!r}")
        return json.loads(raw)


def _group(items: list[dict[str, Any]], kind: str, api_version: str) -> dict[str, dict[str, Any]]:
    return {
        f"{kind}.{api_version}": {
            f"{i['metadata']['namespace']}/{i['metadata']['name']}": i for i in items
        }
    }


def round_trip(api: Client, hooks: Client, name: str) -> dict[str, Any]:
    base = f"/apis/{GROUP}/v1beta1/namespaces/{NS}/seccompprofiles"
    parent = api.call("GET", f"{base}/{name}")
    rules = hooks.call(
        "POST", "/seccompprofile/customize", {"controller": CONTROLLER, "parent": parent}
    )["relatedResources"]
    related: dict[str, dict[str, Any]] = {}
    for rule in rules:
        prefix = "/api/v1" if rule["apiVersion"] == "v1" else f"/apis/{rule['apiVersion']}"
        query = "?resourceVersion=0"
        if rule.get("labelSelector"):
            query += "&labelSelector=" + quote(
                ",".join(f"{k}={v}" for k, v in rule["labelSelector"]["matchLabels"].items())
            )
        listed = api.call(
            "GET", f"{prefix}/namespaces/{rule['namespace']}/{rule['resource']}{query}"
        )
        kind = listed["kind"].removesuffix("List")
        for item in listed["items"]:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", rule["apiVersion"])
        related.update(_group(listed["items"], kind, rule["apiVersion"]))
    configmaps = api.call(
        "GET",
        f"/api/v1/namespaces/{NS}/configmaps?resourceVersion=0&labelSelector="
        + quote(f"spo.x-k8s.io/profile-id=SeccompProfile-{name}"),
    )
    request = {
        "controller": CONTROLLER,
        "parent": parent,
        "children": _group(configmaps["items"], "ConfigMap", "v1"),
        "related": related,
        "finalizing": False,
    }
    answer = hooks.call("POST", "/seccompprofile/sync", request)
    owner = {
        "apiVersion": parent["apiVersion"],
        "kind": "SeccompProfile",
        "name": name,
        "uid": parent["metadata"]["uid"],
        "controller": True,
    }
    for child in answer["children"]:
        child["metadata"]["ownerReferences"] = [owner]
        path = (
            f"/api/v1/namespaces/{NS}/configmaps/{child['metadata']['name']}"
            "?fieldManager=metacontroller&force=true"
        )
        api.call("PATCH", path, child, content_type="application/apply-patch+yaml")
    parent["status"] = answer["status"]
    api.call("PUT", f"{base}/{name}/status", parent)
    return request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=200)
    args = parser.parse_args()
    binaries = ensure_binaries()
    plane = ControlPlane(binaries)
    started = time.monotonic()
    plane.start()
    start_s = time.monotonic() - started
    try:
        plane.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "crd", "--all")
        plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        profiles = [
            {
                "apiVersion": f"{GROUP}/v1beta1",
                "kind": "SeccompProfile",
                "metadata": {"name": f"p-{i:04d}", "namespace": NS},
                "spec": {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [
                        {
                            "names": ["read", "write", "openat", "close", "exit_group"],
                            "action": "SCMP_ACT_ALLOW",
                        }
                    ],
                },
            }
            for i in range(args.profiles)
        ]
        plane.apply(profiles)
        with running_hooks(workers=2) as hook_base:
            api = Client(plane.server, plane.ssl_context())
            hooks = Client(hook_base)
            names = [p["metadata"]["name"] for p in profiles]
            round_trip(api, hooks, names[0])  # warm both connections
            t0 = time.perf_counter()
            requests = [round_trip(api, hooks, name) for name in names]
            roundtrip_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            for request in requests:
                hooks.call("POST", "/seccompprofile/sync", request)
            hook_s = time.perf_counter() - t1
        stored = plane.kubectl_json(
            "get", "configmaps", "-n", NS, "-l", "spo.x-k8s.io/profile-kind=SeccompProfile"
        )["items"]
        assert len(stored) == args.profiles, len(stored)
    finally:
        plane.stop()
    result = {
        "benchmark": "apiserver-plus-hook-round-trip",
        "control_plane_start_s": round(start_s, 3),
        "profiles": args.profiles,
        "roundtrip_profiles_per_s": round(args.profiles / roundtrip_s, 1),
        "hook_only_syncs_per_s": round(args.profiles / hook_s, 1),
        "ratio_roundtrip_over_hook_only": round(hook_s / roundtrip_s, 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
