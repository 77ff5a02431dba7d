"""Peak memory of a hook worker after the largest requests `spo hooks` accepts, and after one it
refuses.

Each case gets a fresh `spo hooks` with one worker; the worker's peak resident
memory (VmHWM) is read after one request, and compared with the baseline, the
same worker after a `/healthz` only. Cases:

- ``realistic``: the largest request the service gets in earnest (see
  hooks/web/limits.py): a SeccompProfile sync with 1,000 node statuses and
  1,000 pods as the API server writes them (managed fields included), a 1 MiB
  profile whose ConfigMap is a child (with Metacontroller's last-applied copy)
  and a 1 MiB base profile;
- ``tiny-values``: a body of nothing but empty objects, just under the JSON value cap;
- ``args-profile``: a profile of argument rules filling the body limit;
- ``long-string``: one string filling the body limit;
- ``over-limit``: a 100 MB body (refused with 413 before it is read).

    python bench/bench_hook_memory.py

Prints one JSON object: the body size, answer and peak RSS (MiB) of each case.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from hooks.cluster.web.limits import MAX_BODY_BYTES, MAX_JSON_VALUES

GROUP = "security-profiles-operator.x-k8s.io"
NS = "team-a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _managed(manager: str, fields: int) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Update",
        "apiVersion": "v1",
        "time": "2026-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {f"f:field{i}": {".": {}, f"f:sub{i}": {}} for i in range(fields)},
    }


def pod(i: int) -> dict[str, Any]:
    """A pod of a Deployment as the API server returns it: about 7 KiB of JSON."""
    container = {
        "name": "app",
        "image": "registry.example.com/team-a/web:1.2.3",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": f"VAR_{k}", "value": f"value-{k}"} for k in range(10)],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "volumeMounts": [
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            }
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": f"operator/{NS}/big.json"}
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-7d9f8b6c5d-{i:05d}",
            "generateName": "web-7d9f8b6c5d-",
            "namespace": NS,
            "uid": f"0f6c1a2e-5b7d-4c3a-9e8f-{i:012d}",
            "resourceVersion": str(100000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9f8b6c5d",
                    "uid": "rs-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [_managed("kube-controller-manager", 25), _managed("kubelet", 20)],
        },
        "spec": {
            "containers": [container],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
                        ]
                    },
                }
            ],
            "nodeName": f"node-{i % 1000:04d}",
            "serviceAccountName": "default",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.0.{i // 250}.{i % 250}",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "image": container["image"],
                    "imageID": "sha256:" + "a" * 64,
                    "containerID": "containerd://" + "b" * 64,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        },
    }


def node_status(i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "SecurityProfileNodeStatus",
        "metadata": {
            "name": f"big-node-{i:04d}",
            "namespace": NS,
            "uid": f"u-{i}",
            "resourceVersion": str(i),
            "labels": {
                "spo.x-k8s.io/profile-id": "SeccompProfile-big",
                "spo.x-k8s.io/node-name": f"node-{i:04d}",
            },
            "managedFields": [_managed("spo-nodesync", 6)],
        },
        "nodeName": f"node-{i:04d}",
        "status": "Installed",
    }


def arg_rules(count: int) -> list[dict[str, Any]]:
    return [
        {
            "names": ["read"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": k, "op": "SCMP_CMP_EQ"}],
        }
        for k in range(count)
    ]


def profile(name: str, rules: int, base: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": arg_rules(rules)}
    if base:
        spec["baseProfileName"] = base
    last_applied = json.dumps(
        {"apiVersion": f"{GROUP}/v1beta1", "kind": "SeccompProfile", "spec": spec}
    )
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"u-{name}",
            "generation": 1,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied},
        },
        "spec": spec,
    }


def realistic() -> dict[str, Any]:
    rules = 5_000  # with its base's 2,500, about 1 MiB of profile: what a ConfigMap holds
    parent = profile("big", rules, base="base")
    content = json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": arg_rules(rules)})
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "seccomp-big",
            "namespace": NS,
            "annotations": {
                "metacontroller.k8s.io/last-applied-configuration": json.dumps(
                    {"data": {"profile.json": content}}
                )
            },
        },
        "data": {"profile.json": content},
    }
    return {
        "controller": {
            "kind": "CompositeController",
            "metadata": {"name": "seccompprofile-controller"},
        },
        "parent": parent,
        "children": {"ConfigMap.v1": {f"{NS}/seccomp-big": configmap}},
        "related": {
            f"SecurityProfileNodeStatus.{GROUP}/v1alpha1": {
                f"{NS}/big-node-{i:04d}": node_status(i) for i in range(1000)
            },
            "Pod.v1": {f"{NS}/web-{i:05d}": pod(i) for i in range(1000)},
            f"SeccompProfile.{GROUP}/v1beta1": {f"{NS}/base": profile("base", rules // 2)},
        },
        "finalizing": False,
    }


def minimal_parent() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"defaultAction": "SCMP_ACT_ERRNO"},
    }


def cases() -> dict[str, bytes]:
    tiny = json.dumps(
        {"parent": minimal_parent(), "controller": {"x": [{}] * (MAX_JSON_VALUES // 2 - 100)}}
    ).encode()
    args = minimal_parent()
    args["spec"]["syscalls"] = arg_rules(min(MAX_BODY_BYTES // 112, MAX_JSON_VALUES // 10 - 10))
    long = {"parent": minimal_parent(), "controller": {"x": "y" * (MAX_BODY_BYTES - 1000)}}
    return {
        "realistic": json.dumps(realistic()).encode(),
        "tiny-values": tiny,
        "args-profile": json.dumps({"parent": args}).encode(),
        "long-string": json.dumps(long).encode(),
        "over-limit": b"{" + b" " * (100 * 1024 * 1024) + b"}",
    }


def _worker_pid(master: int) -> int:
    children = open(f"/proc/{master}/task/{master}/children").read().split()  # noqa: SIM115
    return int(children[0])


def _peak_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):  # noqa: SIM115
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _post(base: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"{base}/seccompprofile/sync", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return -1  # the server closed the connection while the body was being sent


def measure(body: bytes | None) -> tuple[int, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hooks.command.cli",
            "--log-level",
            "ERROR",
            "hooks",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        code = 200 if body is None else _post(base, body)
        return code, _peak_mib(_worker_pid(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    _, baseline = measure(None)
    result: dict[str, Any] = {
        "limit_bytes": MAX_BODY_BYTES,
        "max_json_values": MAX_JSON_VALUES,
        "baseline_peak_mib": round(baseline, 1),
        "cases": {},
    }
    for name, body in cases().items():
        code, peak = measure(body)
        result["cases"][name] = {
            "body_mib": round(len(body) / 2**20, 2),
            "code": code,
            "peak_mib": round(peak, 1),
            "ratio_to_baseline": round(peak / baseline, 2),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
