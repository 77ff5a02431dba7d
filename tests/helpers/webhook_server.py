"""The admission webhooks served over HTTPS, reached by the real API server through their Service.

``spo webhook`` runs as the Deployment runs it (one gunicorn worker whose threads list and watch
the four kinds its tables need), with a real token of the install's ServiceAccount
``spo-webhook`` (so its RBAC is what it reads with) and a certificate for
``spo-webhook.security-profiles-operator.svc`` (the name the API server checks when it calls a
webhook through a Service) and for the addresses it listens on, signed by a throw-away CA. It
is ready once its tables are loaded. The API server runs with
``--enable-aggregator-routing=true``: it calls a webhook's Service on one of its ready
endpoints, read from the Service's EndpointSlices, rather than on its cluster IP (no
kube-proxy runs here). So :func:`serving_webhooks` publishes an EndpointSlice of the
installed Service ``spo-webhook`` whose endpoint is this machine's own non-loopback address
(the API server refuses loopback endpoints) and the server's port.

``decorator_step`` does one faithful sync of the namespace decorator (``DecoratorStep``, whose
hooks ``spo hooks`` serves beside): the webhook configuration is attached exactly as the hook
computes it, ``clientConfig.service`` and all; then cert-manager's CA injector's stand-in
(``inject_ca_bundle``) writes the CA into every webhook's ``caBundle``. Nothing carries the
tables: the webhook watches the objects itself.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.controlplane import ControlPlane, free_port, make_pki
from tests.helpers.hookserver import serving
from tests.helpers.metacontroller_common import admin_api_for
from tests.helpers.metacontroller_step import DecoratorStep
from tests.helpers.stand_ins import inject_ca_bundle

REPO = Path(__file__).resolve().parent.parent.parent
OPERATOR_NS = "security-profiles-operator"
CONFIGURATION = "spo-mutating-webhook-configuration"
SERVICE = "spo-webhook"
SERVICE_PORT_NAME = "https"  # of metacontroller/base/webhook.yaml
SERVICE_DNS = f"{SERVICE}.{OPERATOR_NS}.svc"
ENDPOINT_SLICE = "spo-webhook-e2e"
WEBHOOK_ACCOUNT = "spo-webhook"


@dataclass
class WebhookServer:
    base: str  # the webhooks (spo webhook, HTTPS)
    hooks: str  # the sync hooks (spo hooks, HTTP), for the decorator step
    ca: Path
    context: ssl.SSLContext

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            assert response.status == 200
            return dict(json.loads(response.read()))


def host_address() -> str:
    """This machine's own non-loopback IPv4 address (where the API server can be sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        raise RuntimeError(
            "no non-loopback IPv4 address: the API server cannot be sent to the webhook"
        )
    return address


def endpoint_slice(address: str, port: int) -> dict[str, Any]:
    """The EndpointSlice the endpoint-slice controller would make for a ready hooks pod at
    ``address`` serving the Service's ``https`` port on ``port``. It does not carry the
    controller's ``managed-by`` label, so a real controller would leave it alone."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": ENDPOINT_SLICE,
            "namespace": OPERATOR_NS,
            "labels": {"kubernetes.io/service-name": SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": SERVICE_PORT_NAME, "port": port, "protocol": "TCP"}],
    }


@contextmanager
def serving_webhooks(folder: Path, plane: ControlPlane) -> Iterator[WebhookServer]:
    """``spo webhook`` over HTTPS on a free port of this machine (every address), with a token of
    the ServiceAccount ``spo-webhook``, that address published as the endpoint of the Service
    ``spo-webhook``; and ``spo hooks`` over HTTP for the decorator. Ready when its tables are
    loaded; stopped, and the EndpointSlice deleted, on exit."""
    address = host_address()
    pki = make_pki(folder / "pki", extra_sans=(f"DNS:{SERVICE_DNS}", f"IP:{address}"))
    kubeconfig = plane.service_account_kubeconfig(OPERATOR_NS, WEBHOOK_ACCOUNT, create=False)
    port, hooks_port = free_port(), free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("PROMETHEUS_MULTIPROC_DIR", "KUBECONFIG")
        },
        "PYTHONPATH": str(REPO),
    }
    spo = [sys.executable, "-m", "hooks.command.cli"]
    webhook = [
        *spo,
        "webhook",
        "--bind",
        f"0.0.0.0:{port}",
        "--certfile",
        str(pki.serving_cert),
        "--keyfile",
        str(pki.serving_key),
        "--kubeconfig",
        str(kubeconfig),
    ]
    hooks = [*spo, "hooks", "--workers", "1", "--bind", f"127.0.0.1:{hooks_port}"]
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    server = WebhookServer(
        f"https://127.0.0.1:{port}", f"http://127.0.0.1:{hooks_port}", pki.ca_cert, context
    )
    with (
        serving(hooks, server.hooks, env=env, cwd=REPO),
        serving(webhook, server.base, env=env, cwd=REPO, context=context),
    ):
        plane.apply(endpoint_slice(address, port))
        try:
            yield server
        finally:
            plane.kubectl(
                "delete",
                "endpointslice",
                ENDPOINT_SLICE,
                "-n",
                OPERATOR_NS,
                "--ignore-not-found",
                check=False,
            )


def with_status(
    plane: ControlPlane, resource: str, namespace: str, name: str, status: dict[str, Any]
) -> None:
    """Write ``status`` through the status subresource (what a controller or nodesync would
    report)."""
    current = plane.kubectl_json("get", resource, name, "-n", namespace)
    current["status"] = status
    plane.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(current))


def decorator_step(plane: ControlPlane, server: WebhookServer) -> dict[str, Any]:
    """One faithful sync of spo-namespace-decorator (its hooks on ``server.hooks``); then the CA
    injector's part. The hook's answer."""
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "namespace-decorator.yaml").read_text()
    )
    step = DecoratorStep(plane, server.hooks, manifest)
    answer = step.sync("v1", "Namespace", None, OPERATOR_NS)
    inject_ca_bundle(admin_api_for(plane), CONFIGURATION, server.ca.read_bytes())
    return answer


def admitted(plane: ControlPlane, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The pod as admission would store it (a server-side dry run: the webhooks are called,
    nothing is stored)."""
    proc = plane.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(manifest),
    )
    return dict(json.loads(proc.stdout))


def wait_admitted(
    plane: ControlPlane,
    namespace: str,
    manifest: dict[str, Any],
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Dry-run ``manifest`` until the admitted pod satisfies ``done`` (the webhook's tables have
    caught up with what was just applied); the last admitted pod."""
    deadline = time.monotonic() + timeout
    while True:
        got = admitted(plane, namespace, manifest)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def pod(
    name: str, containers: list[dict[str, Any]], labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": containers, **spec},
    }


def create(
    plane: ControlPlane, namespace: str, manifest: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Create the pod with kubectl; the stored pod and kubectl's stderr (where warnings go)."""
    proc = plane.kubectl(
        "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(manifest)
    )
    return dict(json.loads(proc.stdout)), proc.stderr


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON document by its path (``/containers/0/name``), empty containers
    included."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{path}/{key}"))
        return out or {path: {}}
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(leaves(item, f"{path}/{index}"))
        return out or {path: []}
    return {path: value}


def changes(
    plane: ControlPlane, manifest: dict[str, Any], namespace: str, control_namespace: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """What a webhook set in the pod's spec (leaf paths relative to the spec), found by creating the
    pod in ``namespace`` and, as a control, in ``control_namespace``, where no webhook applies;
    also the stored pod and the warnings kubectl printed."""
    got, warnings = create(plane, namespace, manifest)
    control, control_warnings = create(plane, control_namespace, manifest)
    assert "Warning" not in control_warnings
    mine, theirs = leaves(got["spec"]), leaves(control["spec"])
    removed = {p for p in theirs if p not in mine and not any(m.startswith(p + "/") for m in mine)}
    assert removed == set(), "the webhook removed a field"
    return {path: value for path, value in mine.items() if theirs.get(path) != value}, got, warnings
