"""The operator installed on the node as a user installs it, and what the node tests share.

``installed(cluster)`` applies Metacontroller's CRDs (as Metacontroller's own install would),
then the README's install with ``kubectl apply -k``: the CRDs, then ``metacontroller/`` through
the test overlay ``overlay/`` (the image this session built, no cert-manager); it makes the
webhook's certificate as ``metacontroller/webhook-tls.md`` says for a cluster without
cert-manager, starts ``PollingMetacontroller`` (Metacontroller's part), and returns once both
hooks pods and the spod DaemonSet's pod are Ready through their own probes and the webhook
configuration carries the CA.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubelet.polling_metacontroller import PollingMetacontroller
from tests.e2e.kubenode import Cluster
from tests.helpers.controlplane import ControlPlane, server_extensions

REPO = Path(__file__).resolve().parents[3]
OVERLAY = Path(__file__).resolve().parent / "overlay"
# Metacontroller's ServiceAccount, which the loop impersonates.
METACONTROLLER_IDENTITY = REPO / "tests" / "e2e" / "data" / "metacontroller-identity.yaml"
OPERATOR_NS = "security-profiles-operator"
WEBHOOK_CONFIGURATION = "spo-mutating-webhook-configuration"
OPERATOR_IMAGE = "localhost/security-profiles-operator-py:e2e"
HOOKS = "app.kubernetes.io/component=hooks"
NODESYNC = "app.kubernetes.io/name=spo-nodesync"
METACONTROLLER_CRDS = Path("data") / "metacontroller" / "metacontroller-crds-v1.yaml"


def metacontroller_crds() -> Path:
    """Metacontroller's CRDs, from the project's shared folder (``../shared`` of the work tree
    or of the folder holding it)."""
    for folder in REPO.parents:
        candidate = folder / "shared" / METACONTROLLER_CRDS
        if candidate.exists():
            return candidate
    pytest.fail(f"Metacontroller's CRDs are missing: no shared/{METACONTROLLER_CRDS} above {REPO}")


def eventually(
    check: Callable[[], Any], *, timeout: float = 120.0, what: str = "", every: float = 0.5
) -> Any:
    """Call ``check`` until it returns something true; return that, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"not in {timeout:.0f}s: {what} (last: {last!r})")
        time.sleep(every)


def pods(plane: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list(plane.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"])


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_pods(plane: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    return [p for p in pods(plane, namespace, selector) if pod_ready(p)]


@dataclass
class Operator:
    cluster: Cluster
    loop: PollingMetacontroller
    webhook_ca: Path

    @property
    def plane(self) -> ControlPlane:
        return self.cluster.plane

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.plane.kubectl(*args, **kwargs)


def _apply(cluster: Cluster) -> Path:
    plane = cluster.plane
    # Metacontroller's own install brings its CRDs; its controller is PollingMetacontroller.
    plane.kubectl("apply", "--server-side", "-f", str(metacontroller_crds()))
    plane.kubectl("apply", "--server-side", "-f", str(METACONTROLLER_IDENTITY))
    # The README's install: the CRDs, then (once established) everything else.
    plane.kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    plane.kubectl("apply", "--server-side", "-k", str(OVERLAY), timeout=120)
    # metacontroller/webhook-tls.md, "Without cert-manager", steps 2 and 3 (the CA is the
    # cluster's).
    assert plane.pki is not None
    service = f"spo-webhook.{OPERATOR_NS}.svc"
    cert, key = plane.pki.issue(
        "spo-webhook",
        f"/CN={service}",
        server_extensions([f"DNS:{service}", f"DNS:{service}.cluster.local"]),
    )
    plane.kubectl(
        "create",
        "secret",
        "tls",
        "spo-webhook-tls",
        "-n",
        OPERATOR_NS,
        f"--cert={cert}",
        f"--key={key}",
    )
    # webhook-tls.md, "The metrics certificate", without cert-manager.
    metrics = f"metrics.{OPERATOR_NS}"
    cert, key = plane.pki.issue(
        "spo-metrics",
        f"/CN={metrics}.svc",
        server_extensions(
            [f"DNS:{metrics}", f"DNS:{metrics}.svc", f"DNS:{metrics}.svc.cluster.local"]
        ),
    )
    plane.kubectl(
        "create",
        "secret",
        "generic",
        "spo-metrics-tls",
        "-n",
        OPERATOR_NS,
        "--type=kubernetes.io/tls",
        f"--from-file=tls.crt={cert}",
        f"--from-file=tls.key={key}",
        f"--from-file=ca.crt={plane.pki.ca_cert}",
    )
    return plane.pki.ca_cert


def inject_ca(plane: ControlPlane, ca: Path) -> bool:
    """metacontroller/webhook-tls.md step 4, once the decorator made the configuration."""
    found = plane.kubectl("get", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, check=False)
    if found.returncode != 0:
        return False
    config = plane.kubectl_json("get", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
    bundle = base64.b64encode(ca.read_bytes()).decode()
    patch = [
        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle}
        for i in range(len(config["webhooks"]))
    ]
    plane.kubectl(
        "patch",
        "mutatingwebhookconfiguration",
        WEBHOOK_CONFIGURATION,
        "--type=json",
        "-p",
        json.dumps(patch),
    )
    return True


@contextmanager
def installed(cluster: Cluster) -> Iterator[Operator]:
    plane = cluster.plane
    ca = _apply(cluster)
    loop = PollingMetacontroller(plane)
    loop.start()
    try:
        _until_running(plane, ca)
        yield Operator(cluster, loop, ca)
    finally:
        loop.stop()


def _until_running(plane: ControlPlane, ca: Path) -> None:
    """Wait for the operator's pods and the webhook configuration; when they do not come,
    fail with what the pods say (their status, events and logs)."""
    try:
        eventually(
            lambda: len(ready_pods(plane, OPERATOR_NS, HOOKS)) == 2,
            timeout=180,
            what="both hooks pods Ready",
        )
        eventually(
            lambda: ready_pods(plane, OPERATOR_NS, NODESYNC),
            timeout=180,
            what="the spod DaemonSet's pod Ready",
        )
        eventually(lambda: inject_ca(plane, ca), timeout=120, what="the webhook configuration")
    except pytest.fail.Exception as failed:
        pytest.fail(f"{failed}\n{_pod_report(plane)}")


def _pod_report(plane: ControlPlane) -> str:
    """What the operator's namespace says about its pods: for a failure's message."""
    said = []
    for args in (
        ("get", "pods", "-o", "wide"),
        ("describe", "pods"),
        ("logs", "--all-containers", "--tail=40", "--prefix", "-l", f"{HOOKS}"),
        ("logs", "--all-containers", "--tail=40", "--prefix", "-l", f"{NODESYNC}"),
    ):
        proc = plane.kubectl(*args, "-n", OPERATOR_NS, check=False)
        said.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(said)


def tables(operator: Operator, key: str) -> list[str]:
    """A key of the ConfigMap spo-bindings as each webhook container sees it (its mounted copy;
    the kubelet refreshes each pod's copy on its own, and the API server calls either pod)."""
    seen = []
    for pod in pods(operator.plane, OPERATOR_NS, HOOKS):
        proc = operator.plane.kubectl(
            "exec",
            pod["metadata"]["name"],
            "-n",
            OPERATOR_NS,
            "--container=webhook",
            "--",
            "cat",
            f"/etc/spo/bindings/{key}",
            check=False,
        )
        seen.append(proc.stdout if proc.returncode == 0 else "")
    return seen


def in_every_table(operator: Operator, key: str, text: str) -> bool:
    found = tables(operator, key)
    return bool(found) and all(text in table for table in found)
