"""Pods of the busybox test image on the node, and what the node tests ask of them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.helpers.controlplane import ControlPlane

BUSYBOX_IMAGE = "localhost/spo-e2e/busybox:e2e"
SECCOMP_ROOT = Path("/var/lib/kubelet/seccomp")


def busybox_pod(
    name: str,
    script: str,
    *,
    profile: str | None = None,
    image: str = BUSYBOX_IMAGE,
    labels: dict[str, str] | None = None,
    containers: int = 1,
) -> dict[str, Any]:
    """A pod of ``containers`` busybox containers running ``sh -c script``; with ``profile``
    (a localhostProfile path) on the pod's security context."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "work" if i == 0 else f"work{i}",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
            }
            for i in range(containers)
        ],
    }
    if profile is not None:
        spec["securityContext"] = {
            "seccompProfile": {"type": "Localhost", "localhostProfile": profile}
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


def create(
    plane: ControlPlane, namespace: str, manifest: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """kubectl create; the stored pod and kubectl's stderr (where admission warnings go)."""
    proc = plane.kubectl(
        "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(manifest)
    )
    return dict(json.loads(proc.stdout)), proc.stderr


def get(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return dict(plane.kubectl_json("get", "pod", name, "-n", namespace))


def wait_running(
    plane: ControlPlane, namespace: str, name: str, timeout: float = 90.0
) -> dict[str, Any]:
    """Until every container of the pod runs; fails with the pod's status otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        pod = get(plane, namespace, name)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and all("running" in (s.get("state") or {}) for s in statuses):
            return pod
        if (
            pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            or time.monotonic() > deadline
        ):
            raise AssertionError(
                f"pod {namespace}/{name} is not running: {json.dumps(pod.get('status'))}"
            )
        time.sleep(0.5)


def wait_waiting_reason(
    plane: ControlPlane, namespace: str, name: str, timeout: float = 90.0
) -> tuple[str, str]:
    """Until the pod's first container is stuck or ended without running: (reason, message)."""
    deadline = time.monotonic() + timeout
    while True:
        pod = get(plane, namespace, name)
        for status in pod.get("status", {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") not in (None, "ContainerCreating"):
                return waiting["reason"], waiting.get("message", "")
            terminated = state.get("terminated") or {}
            if terminated:
                return terminated.get("reason", ""), terminated.get("message", "")
            if "running" in state:
                raise AssertionError(f"pod {namespace}/{name} runs: {json.dumps(pod['status'])}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pod {namespace}/{name} neither runs nor fails: {json.dumps(pod.get('status'))}"
            )
        time.sleep(0.5)


def logs(plane: ControlPlane, namespace: str, name: str, container: str | None = None) -> str:
    args = ["logs", name, "-n", namespace] + ([f"--container={container}"] if container else [])
    return plane.kubectl(*args).stdout


def wait_log(
    plane: ControlPlane, namespace: str, name: str, text: str, timeout: float = 60.0
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = plane.kubectl("logs", name, "-n", namespace, check=False).stdout
        if text in out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the logs of {namespace}/{name}: {out!r}")
        time.sleep(0.5)


def exec_in(
    plane: ControlPlane, namespace: str, name: str, *argv: str, container: str | None = None
) -> tuple[int, str]:
    """kubectl exec: (exit code, stdout + stderr)."""
    args = (
        ["exec", name, "-n", namespace]
        + ([f"--container={container}"] if container else [])
        + ["--", *argv]
    )
    proc = plane.kubectl(*args, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def delete(plane: ControlPlane, namespace: str, *names: str, wait: bool = True) -> None:
    plane.kubectl(
        "delete",
        "pod",
        *names,
        "-n",
        namespace,
        "--ignore-not-found",
        f"--wait={str(wait).lower()}",
        timeout=120,
    )
