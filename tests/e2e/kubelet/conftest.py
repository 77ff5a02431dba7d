"""Fixtures of the node tests: a one-node cluster on this machine, and the operator installed on it.

- ``node_images`` (session): the archives of the pause image, the operator's image (built from
  the project's Dockerfile) and the busybox workload image (``tools/image/build.py``, cached).
- ``cluster`` (session): ``kubenode.node_cluster`` with those images imported; one per machine
  (a file lock). After its teardown the machine is compared with how it was before, and a
  difference is an error of the session.
- ``operator`` (session): the operator installed as the README says (``kubectl apply -k``: the
  CRDs, then ``metacontroller/`` through the test overlay ``overlay/``), the webhook's
  certificate made as ``metacontroller/webhook-tls.md`` says, Metacontroller's part done by
  ``PollingMetacontroller`` in a background thread; returns once the hooks Deployment, the spod
  DaemonSet and the webhook configuration are up.

When a component is missing (Go, containerd, buildah, ...), the tests skip with the reason, or
fail when the CI environment variable is set.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from controlplane import (
    ControlPlane,
    ControlPlaneStartError,
    ControlPlaneUnavailable,
    server_extensions,
)
from kubenode import Cluster, node_binaries, node_cluster
from polling_metacontroller import PollingMetacontroller
from unavailable import unavailable as any_test_unavailable

REPO = Path(__file__).resolve().parents[3]
IMAGE_TOOL = REPO / "tools" / "image" / "build.py"
OVERLAY = Path(__file__).resolve().parent / "overlay"
METACONTROLLER_CRDS = (
    REPO.parent / "shared" / "data" / "metacontroller" / "metacontroller-crds-v1.yaml"
)
OPERATOR_NS = "security-profiles-operator"
WEBHOOK_CONFIGURATION = "spo-mutating-webhook-configuration"
OPERATOR_IMAGE = "localhost/security-profiles-operator-py:e2e"
BUSYBOX_IMAGE = "localhost/spo-e2e/busybox:e2e"


def unavailable(reason: str) -> NoReturn:
    any_test_unavailable(f"node unavailable: {reason}")


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


@dataclass(frozen=True)
class NodeImages:
    pause: Path
    operator: Path
    busybox: Path


def _build_image(*args: str) -> Path:
    log = (
        Path(os.environ.get("CONTROLPLANE_CACHE") or REPO / ".cache" / "controlplane")
        / "image-build.log"
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as err:
        proc = subprocess.run(
            [sys.executable, str(IMAGE_TOOL), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=3600,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        unavailable(f"{IMAGE_TOOL} {' '.join(args)} failed ({proc.returncode}); {log}:\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def node_bin_dir() -> Path:
    try:
        return node_binaries()
    except ControlPlaneUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def node_images(node_bin_dir: Path) -> NodeImages:
    return NodeImages(
        pause=_build_image("pause", str(node_bin_dir / "pause")),
        operator=_build_image("operator"),
        busybox=_build_image("busybox"),
    )


@pytest.fixture(scope="session")
def cluster(node_bin_dir: Path, node_images: NodeImages) -> Iterator[Cluster]:
    """The one-node cluster. Its teardown fails (MachineChanged) when the machine is not as found."""
    images = (node_images.pause, node_images.operator, node_images.busybox)
    try:
        with node_cluster(node_bin_dir, images) as running:
            yield running
    except (ControlPlaneUnavailable, ControlPlaneStartError) as exc:
        unavailable(str(exc))


def kubectl_json(plane: ControlPlane, *args: str) -> Any:
    return plane.kubectl_json(*args)


def pods(plane: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list(plane.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"])


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


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


def _install(cluster: Cluster) -> Path:
    plane = cluster.plane
    if not METACONTROLLER_CRDS.exists():
        pytest.fail(f"Metacontroller's CRDs are missing: {METACONTROLLER_CRDS}")
    # Metacontroller's own install brings its CRDs; its controller is PollingMetacontroller.
    plane.kubectl("apply", "--server-side", "-f", str(METACONTROLLER_CRDS))
    # The README's install: the CRDs, then (once established) everything else.
    plane.kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    plane.kubectl("apply", "--server-side", "-k", str(OVERLAY), timeout=120)
    # metacontroller/webhook-tls.md, "Without cert-manager", steps 2 and 3 (the CA is the cluster's).
    assert plane.pki is not None
    cert, key = plane.pki.issue(
        "spo-webhook",
        f"/CN=spo-webhook.{OPERATOR_NS}.svc",
        server_extensions(
            [
                f"DNS:spo-webhook.{OPERATOR_NS}.svc",
                f"DNS:spo-webhook.{OPERATOR_NS}.svc.cluster.local",
            ]
        ),
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
    return plane.pki.ca_cert


def _inject_ca(plane: ControlPlane, ca: Path) -> bool:
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


@pytest.fixture(scope="session")
def operator(cluster: Cluster) -> Iterator[Operator]:
    plane = cluster.plane
    ca = _install(cluster)
    loop = PollingMetacontroller(plane)
    loop.start()
    try:
        installed = Operator(cluster, loop, ca)
        eventually(
            lambda: (
                len(
                    [
                        p
                        for p in pods(plane, OPERATOR_NS, "app.kubernetes.io/component=hooks")
                        if pod_ready(p)
                    ]
                )
                == 2
            ),
            timeout=180,
            what="both hooks pods Ready",
        )
        eventually(
            lambda: [
                p
                for p in pods(plane, OPERATOR_NS, "app.kubernetes.io/name=spo-nodesync")
                if pod_ready(p)
            ],
            timeout=180,
            what="the spod DaemonSet's pod Ready",
        )
        eventually(lambda: _inject_ca(plane, ca), timeout=120, what="the webhook configuration")
        yield installed
    finally:
        loop.stop()
