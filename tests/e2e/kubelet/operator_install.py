"""The operator installed on the node as a user installs it, and what the node tests share.

``installed(cluster)`` applies Metacontroller's CRDs (as Metacontroller's own install would),
then the README's install with ``kubectl apply -k``: the CRDs, then ``metacontroller/`` through
the test overlay ``overlay/`` (the image this session built, no cert-manager); it makes the
webhook's certificate as ``metacontroller/webhook-tls.md`` says for a cluster without
cert-manager, starts Metacontroller's part, and returns once both hooks pods and the spod
DaemonSet's pod are Ready through their own probes and the webhook configuration carries the
CA.

Metacontroller's part is the tests' faithful emulation (``tests/helpers/metacontroller_loop``)
running in the background for the whole package, with the CompositeControllers and
DecoratorControllers the install put on the API server (as Metacontroller watches them). It
reaches the hooks as Metacontroller does in a cluster, through the hooks Service (its
ClusterIP, kube-proxy's rules on this machine: no cluster DNS here), and runs no garbage
collector of its own: the node's kube-controller-manager runs the real one.
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
from urllib.parse import urlsplit

import pytest

from tests.e2e.kubenode import Cluster
from tests.helpers.controlplane import ControlPlane, server_extensions
from tests.helpers.kubeapi import Object
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller, installed_controllers, start

REPO = Path(__file__).resolve().parents[3]
OVERLAY = Path(__file__).resolve().parent / "overlay"
# Metacontroller's ServiceAccount, which the loop impersonates.
METACONTROLLER_IDENTITY = REPO / "tests" / "e2e" / "data" / "metacontroller-identity.yaml"
OPERATOR_NS = "security-profiles-operator"
WEBHOOK_CONFIGURATION = "spo-mutating-webhook-configuration"
OPERATOR_IMAGE = "localhost/security-profiles-operator-py:e2e"
HOOKS = "app.kubernetes.io/component=hooks"
WEBHOOK = "app.kubernetes.io/component=webhook"
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
    loop: Metacontroller
    webhook_ca: Path

    @property
    def plane(self) -> ControlPlane:
        return self.cluster.plane

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.plane.kubectl(*args, **kwargs)


def _apply(cluster: Cluster) -> Path:
    return apply_install(cluster, REPO, OVERLAY)


def apply_install(cluster: Cluster, tree: Path, overlay: Path, *, issued_as: str = "") -> Path:
    """The README's install of the source ``tree`` (its CRDs, then ``overlay``), with the webhook
    and metrics certificates made as ``metacontroller/webhook-tls.md`` says without
    cert-manager; returns the webhook's CA.
    ``issued_as`` tells the certificates of another install apart in the cluster's PKI."""
    plane = cluster.plane
    # Metacontroller's own install brings its CRDs (and its ServiceAccount, which the emulated
    # loop acts as).
    plane.kubectl("apply", "--server-side", "-f", str(metacontroller_crds()))
    plane.kubectl("apply", "--server-side", "-f", str(METACONTROLLER_IDENTITY))
    # The README's install: the CRDs, then (once established) everything else.
    plane.kubectl("apply", "--server-side", "-k", str(tree / "crds"))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    plane.kubectl("apply", "--server-side", "-k", str(overlay), timeout=120)
    # metacontroller/webhook-tls.md, "Without cert-manager", steps 2 and 3 (the CA is the
    # cluster's).
    assert plane.pki is not None
    service = f"spo-webhook.{OPERATOR_NS}.svc"
    cert, key = plane.pki.issue(
        f"spo-webhook{issued_as}",
        f"/CN={service}",
        server_extensions([f"DNS:{service}", f"DNS:{service}.cluster.local"]),
    )
    plane.kubectl(
        "create", "secret", "tls", "spo-webhook-tls", "-n", OPERATOR_NS, f"--cert={cert}",
        f"--key={key}",
    )  # fmt: skip
    # webhook-tls.md, "The metrics certificate", without cert-manager.
    metrics = f"metrics.{OPERATOR_NS}"
    cert, key = plane.pki.issue(
        f"spo-metrics{issued_as}",
        f"/CN={metrics}.svc",
        server_extensions(
            [f"DNS:{metrics}", f"DNS:{metrics}.svc", f"DNS:{metrics}.svc.cluster.local"]
        ),
    )
    plane.kubectl(
        "create", "secret", "generic", "spo-metrics-tls", "-n", OPERATOR_NS,
        "--type=kubernetes.io/tls", f"--from-file=tls.crt={cert}", f"--from-file=tls.key={key}",
        f"--from-file=ca.crt={plane.pki.ca_cert}",
    )  # fmt: skip
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
    controllers = installed_controllers(api_for(plane))
    loop = start(plane, hooks_base(plane, controllers), *controllers, garbage_collector=None)
    try:
        _until_running(plane, ca, loop)
        yield Operator(cluster, loop, ca)
    finally:
        loop.stop()


def hooks_base(plane: ControlPlane, controllers: list[Object]) -> str:
    """``scheme://ClusterIP:port`` of the one Service every hook URL of ``controllers`` names
    (``http://service.namespace[:port]/path``)."""
    urls = {
        urlsplit(hook["webhook"]["url"])
        for controller in controllers
        for hook in controller["spec"]["hooks"].values()
    }
    hosts = {(url.scheme, url.hostname or "", url.port) for url in urls}
    assert len(hosts) == 1, f"the hooks are not on one Service: {sorted(map(str, hosts))}"
    ((scheme, host, port),) = hosts
    service, _, namespace = host.partition(".")
    found = plane.kubectl_json("get", "service", service, "-n", namespace.split(".")[0])
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{found['spec']['clusterIP']}:{port}"


def _until_running(plane: ControlPlane, ca: Path, loop: Metacontroller) -> None:
    """Wait for the operator's pods and the webhook configuration; when they do not come,
    fail with what the pods say (their status, events and logs) and the loop's errors."""
    try:
        eventually(
            lambda: len(ready_pods(plane, OPERATOR_NS, HOOKS)) == 2,
            timeout=180,
            what="both hooks pods Ready",
        )
        eventually(
            lambda: len(ready_pods(plane, OPERATOR_NS, WEBHOOK)) == 2,
            timeout=180,
            what="both webhook pods Ready (their tables listed)",
        )
        eventually(
            lambda: ready_pods(plane, OPERATOR_NS, NODESYNC),
            timeout=180,
            what="the spod DaemonSet's pod Ready",
        )
        eventually(lambda: inject_ca(plane, ca), timeout=120, what="the webhook configuration")
    except pytest.fail.Exception as failed:
        pytest.fail(f"{failed}\n{_pod_report(plane)}\nMetacontroller's errors: {loop.errors}")


def _pod_report(plane: ControlPlane) -> str:
    """What the operator's namespace says about its pods: for a failure's message."""
    said = []
    for args in (
        ("get", "pods", "-o", "wide"),
        ("describe", "pods"),
        ("logs", "--all-containers", "--tail=40", "--prefix", "-l", f"{HOOKS}"),
        ("logs", "--all-containers", "--tail=40", "--prefix", "-l", f"{WEBHOOK}"),
        ("logs", "--all-containers", "--tail=40", "--prefix", "-l", f"{NODESYNC}"),
    ):
        proc = plane.kubectl(*args, "-n", OPERATOR_NS, check=False)
        said.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(said)
