"""The admission webhooks served over HTTPS on loopback, for the e2e tests that register them.

The hooks run under gunicorn with a certificate for 127.0.0.1 (made with
openssl, signed by a throw-away CA). ``decorator_step`` does one sync of the
namespace decorator the way Metacontroller would: its customize and sync hooks
are called, the attachments applied, the computed webhook configuration
registered with ``clientConfig`` pointing at this server (``url`` +
``caBundle``) instead of the in-cluster Service, and every key of the
``spo-bindings`` ConfigMap written to the folder the webhooks read their tables
from (what the kubelet does for a mounted ConfigMap).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from flask import Flask

from tests.helpers.controlplane import ControlPlane, free_port, make_pki
from tests.helpers.hookserver import serving
from tests.helpers.metacontroller_step import _group, _resource_arg

REPO = Path(__file__).resolve().parent.parent.parent
OPERATOR_NS = "security-profiles-operator"
CONFIGURATION = "spo-mutating-webhook-configuration"
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


@contextmanager
def serving_webhooks(folder: Path) -> Iterator[WebhookServer]:
    """gunicorn over HTTPS on a free loopback port, serving ``webhook_app()``; stopped on exit."""
    pki = make_pki(folder / "pki")  # its serving certificate is for IP 127.0.0.1
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
        yield server


def with_status(
    plane: ControlPlane, resource: str, namespace: str, name: str, status: dict[str, Any]
) -> None:
    """Write ``status`` through the status subresource (what a controller or nodesync would
    report)."""
    current = plane.kubectl_json("get", resource, name, "-n", namespace)
    current["status"] = status
    plane.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(current))


def decorator_step(plane: ControlPlane, server: WebhookServer) -> dict[str, Any]:
    """One sync of spo-namespace-decorator, done by hand; registers the configuration and the
    tables."""
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "namespace-decorator.yaml").read_text()
    )
    hooks = manifest["spec"]["hooks"]
    namespace = plane.kubectl_json("get", "namespace", OPERATOR_NS)
    path = urlsplit(hooks["customize"]["webhook"]["url"]).path
    rules = server.post(path, {"controller": manifest, "parent": namespace})["relatedResources"]
    related: list[dict[str, Any]] = []
    for rule in rules:
        args = ["get", _resource_arg(rule["apiVersion"], rule["resource"])]
        args += ["-n", rule["namespace"]] if rule.get("namespace") else ["--all-namespaces"]
        items = plane.kubectl_json(*args)["items"]
        related += [
            i for i in items if not rule.get("names") or i["metadata"]["name"] in rule["names"]
        ]
    path = urlsplit(hooks["sync"]["webhook"]["url"]).path
    body = {
        "controller": manifest,
        "object": namespace,
        "attachments": {},
        "related": _group(related),
        "finalizing": False,
    }
    answer = server.post(path, body)
    owner = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": OPERATOR_NS,
        "uid": namespace["metadata"]["uid"],
        "controller": True,
    }
    for attachment in answer["attachments"]:
        attachment["metadata"]["ownerReferences"] = [owner]
        if attachment["kind"] == "MutatingWebhookConfiguration":
            for hook in attachment["webhooks"]:
                service = hook["clientConfig"]["service"]
                hook["clientConfig"] = {
                    "url": f"{server.base}{service['path']}",
                    "caBundle": base64.b64encode(server.ca.read_bytes()).decode(),
                }
        else:
            for key, text in attachment["data"].items():
                server.publish(key, text)
        plane.kubectl(
            "apply",
            "--server-side",
            "--field-manager=metacontroller",
            "--force-conflicts",
            "-f",
            "-",
            input=json.dumps(attachment),
        )
    return answer


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
