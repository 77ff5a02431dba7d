"""The admission webhooks served over HTTPS, reached by the real API server through their Service.

The hooks run under gunicorn with a certificate for ``spo-webhook.security-profiles-operator.svc``
(the name the API server checks when it calls a webhook through a Service) and for the
addresses it listens on, signed by a throw-away CA. The API server runs with
``--enable-aggregator-routing=true``: it calls a webhook's Service on one of its ready
endpoints, read from the Service's EndpointSlices, rather than on its cluster IP (no
kube-proxy runs here). So :func:`serving_webhooks` publishes an EndpointSlice of the
installed Service ``spo-webhook`` whose endpoint is this machine's own non-loopback address
(the API server refuses loopback endpoints) and the server's port.

``decorator_step`` does one faithful sync of the namespace decorator (``DecoratorStep``): the
webhook configuration is attached exactly as the hook computes it, ``clientConfig.service``
and all. Then two stand-ins do what the cluster does besides Metacontroller: cert-manager's
CA injector (``inject_ca_bundle``: the CA into every webhook's ``caBundle``) and the
kubelet's ConfigMap volume (every key of the stored ``spo-bindings`` ConfigMap written to the
folder the webhooks read their tables from; at once, where the kubelet takes about a minute).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Flask

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
TABLES_CONFIGMAP = "spo-bindings"
RECORDING_ROUTE = "/mutate-v1-pod-recording"


def webhook_app() -> Flask:
    """What gunicorn serves: the hook app, with the binding and recording blueprints until
    hooks/app.py registers them (and the recording route, until hooks/web/binding.py drops its
    placeholder for the same path: the first rule registered for a path wins)."""
    from hooks.cluster.app import create_app
    from hooks.cluster.web import binding, recording

    app = create_app()
    for blueprint in (binding.blueprint, recording.blueprint):
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)
    for rule in app.url_map.iter_rules():
        if rule.rule == RECORDING_ROUTE:
            app.view_functions[rule.endpoint] = app.view_functions["recording.mutate_pod_recording"]
    return app


@dataclass
class WebhookServer:
    base: str
    ca: Path
    tables: Path  # the folder of bindings.json and recordings.json (the mounted ConfigMap)
    context: ssl.SSLContext

    @property
    def table(self) -> Path:
        return self.tables / "bindings.json"

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            assert response.status == 200
            return dict(json.loads(response.read()))

    def publish(self, key: str, text: str) -> None:
        """Write one ConfigMap key atomically, as the kubelet swaps a ConfigMap volume."""
        staged = self.tables / f".{key}.next"
        staged.write_text(text)
        os.replace(staged, self.tables / key)


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
    """gunicorn over HTTPS serving ``webhook_app()`` on a free port of 127.0.0.1 and of this
    machine's address, that address published as the endpoint of the Service ``spo-webhook``;
    stopped, and the EndpointSlice deleted, on exit."""
    address = host_address()
    pki = make_pki(folder / "pki", extra_sans=(f"DNS:{SERVICE_DNS}", f"IP:{address}"))
    tables = folder / "tables"
    tables.mkdir()
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("PROMETHEUS_MULTIPROC_DIR", "SPO_RECORDINGS_FILE")
        },
        "SPO_BINDINGS_FILE": str(tables / "bindings.json"),
        "PYTHONPATH": str(REPO),
    }
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--bind",
        f"{address}:{port}",
        "--certfile",
        str(pki.serving_cert),
        "--keyfile",
        str(pki.serving_key),
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "tests.helpers.webhook_server:webhook_app()",
    ]
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    server = WebhookServer(f"https://127.0.0.1:{port}", pki.ca_cert, tables, context)
    with serving(argv, server.base, env=env, cwd=REPO, context=context):
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
    """One faithful sync of spo-namespace-decorator (its hooks on ``server``); then the CA
    injector's and the kubelet's parts. The hook's answer."""
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "namespace-decorator.yaml").read_text()
    )
    step = DecoratorStep(plane, server.base, manifest, context=server.context)
    answer = step.sync("v1", "Namespace", None, OPERATOR_NS)
    inject_ca_bundle(admin_api_for(plane), CONFIGURATION, server.ca.read_bytes())
    publish_tables(plane, server)
    return answer


def publish_tables(plane: ControlPlane, server: WebhookServer) -> None:
    """What the kubelet does for the mounted ConfigMap ``spo-bindings``: its keys as files."""
    stored = plane.kubectl(
        "get", "configmap", TABLES_CONFIGMAP, "-n", OPERATOR_NS, "-o", "json", check=False
    )
    if stored.returncode != 0:
        return
    for key, text in (json.loads(stored.stdout).get("data") or {}).items():
        server.publish(key, text)


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
