"""The binding webhook, called by the real kube-apiserver over HTTPS.

The hooks run under gunicorn on loopback with a certificate for 127.0.0.1
(made with openssl, signed by a throw-away CA). The webhook configuration the
namespace decorator computes is registered as it is, except that
``clientConfig`` points at that server (``url`` + ``caBundle``) instead of the
in-cluster Service. The binding table is made the way the cluster makes it:
the decorator's customize and sync hooks are called as Metacontroller would
call them, the ConfigMap is applied, and its ``bindings.json`` is written to
the file the webhook reads (what the kubelet does for a mounted ConfigMap).

Pods are created in a namespace labelled ``spo.x-k8s.io/enable-binding`` and,
as a control, the same pod in an unlabelled namespace: the difference between
the two read-back specs is exactly what the webhook changed.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from controlplane import ControlPlane, free_port, make_pki
from flask import Flask
from metacontroller_step import CompositeStep, _group, _resource_arg

from hooks.api import GROUP

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
OPERATOR_NS = "security-profiles-operator"
BOUND_NS = "bind-e2e"
PLAIN_NS = "bind-e2e-plain"
CONFIGURATION = "spo-mutating-webhook-configuration"
SELINUX_USAGE = f"web-policy_{BOUND_NS}.process"


def webhook_app() -> Flask:
    """What gunicorn serves: the hook app, with the binding blueprint until hooks/app.py registers it."""
    from hooks.app import create_app
    from hooks.web import binding

    app = create_app()
    if binding.blueprint.name not in app.blueprints:
        app.register_blueprint(binding.blueprint)
    return app


@dataclass
class WebhookServer:
    base: str
    ca: Path
    table: Path
    context: ssl.SSLContext

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            assert response.status == 200
            return dict(json.loads(response.read()))


@pytest.fixture(scope="module")
def webhook(installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    folder = tmp_path_factory.mktemp("binding-webhook")
    pki = make_pki(folder / "pki")  # its serving certificate is for IP 127.0.0.1
    table = folder / "bindings.json"
    port = free_port()
    here = Path(__file__).resolve().parent
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "SPO_BINDINGS_FILE": str(table),
        "PYTHONPATH": os.pathsep.join([str(here), str(here.parent), str(REPO)]),
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{port}",
            "--certfile", str(pki.serving_cert), "--keyfile", str(pki.serving_key),
            "--workers", "1", "--worker-class", "gthread", "--threads", "4",
            "test_binding_webhook_e2e:webhook_app()",
        ],
        cwd=here,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    server = WebhookServer(f"https://127.0.0.1:{port}", pki.ca_cert, table, context)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{server.base}/readyz", timeout=1, context=context):
                    break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.poll() is not None and process.stderr else ""
                    raise RuntimeError(f"the HTTPS hook server did not come up: {error}\n{stderr}") from error
                time.sleep(0.1)
        yield server
    finally:
        installed.kubectl("delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found", check=False)
        for namespace in (BOUND_NS, PLAIN_NS):
            installed.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def _with_status(plane: ControlPlane, resource: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    current = plane.kubectl_json("get", resource, name, "-n", namespace)
    current["status"] = status
    plane.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(current))


def _binding(namespace: str, name: str, image: str, kind: str, profile: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileBinding",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"profileRef": {"kind": kind, "name": profile}, "image": image},
    }


def _seccomp(plane: ControlPlane, namespace: str, name: str, state: str) -> None:
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"defaultAction": "SCMP_ACT_LOG"},
        }
    )
    status = {"status": state, "localhostProfile": f"operator/{namespace}/{name}.json"}
    _with_status(plane, f"seccompprofiles.{GROUP}", namespace, name, status)


def _decorator_step(plane: ControlPlane, server: WebhookServer) -> dict[str, Any]:
    """One sync of spo-namespace-decorator, done by hand; registers the configuration and the table."""
    manifest = yaml.safe_load((REPO / "metacontroller" / "namespace-decorator.yaml").read_text())
    hooks = manifest["spec"]["hooks"]
    namespace = plane.kubectl_json("get", "namespace", OPERATOR_NS)
    path = urlsplit(hooks["customize"]["webhook"]["url"]).path
    rules = server.post(path, {"controller": manifest, "parent": namespace})["relatedResources"]
    related: list[dict[str, Any]] = []
    for rule in rules:
        args = ["get", _resource_arg(rule["apiVersion"], rule["resource"])]
        args += ["-n", rule["namespace"]] if rule.get("namespace") else ["--all-namespaces"]
        items = plane.kubectl_json(*args)["items"]
        related += [i for i in items if not rule.get("names") or i["metadata"]["name"] in rule["names"]]
    path = urlsplit(hooks["sync"]["webhook"]["url"]).path
    body = {"controller": manifest, "object": namespace, "attachments": {}, "related": _group(related), "finalizing": False}
    answer = server.post(path, body)
    owner = {"apiVersion": "v1", "kind": "Namespace", "name": OPERATOR_NS, "uid": namespace["metadata"]["uid"], "controller": True}
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
            staged = server.table.with_suffix(".next")
            staged.write_text(attachment["data"]["bindings.json"])
            os.replace(staged, server.table)  # atomically, as the kubelet swaps a ConfigMap volume
        plane.kubectl("apply", "--server-side", "--field-manager=metacontroller", "--force-conflicts", "-f", "-", input=json.dumps(attachment))
    return answer


@pytest.fixture(scope="module")
def bound(installed: ControlPlane, webhook: WebhookServer) -> ControlPlane:
    plane = installed
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BOUND_NS, "labels": {"spo.x-k8s.io/enable-binding": ""}}})
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAIN_NS}})
    for namespace in (BOUND_NS, PLAIN_NS):
        _seccomp(plane, namespace, "web", "Installed")
        plane.apply(_binding(namespace, "nginx", "nginx:1.27", "SeccompProfile", "web"))
    _seccomp(plane, BOUND_NS, "slow", "Pending")
    plane.apply(
        {"apiVersion": f"{GROUP}/v1alpha2", "kind": "SelinuxProfile", "metadata": {"name": "web-policy", "namespace": BOUND_NS}, "spec": {}}
    )
    _with_status(plane, f"selinuxprofiles.{GROUP}", BOUND_NS, "web-policy", {"status": "Installed", "usage": SELINUX_USAGE})
    plane.apply(_binding(BOUND_NS, "redis", "redis:7", "SeccompProfile", "slow"))
    plane.apply(_binding(BOUND_NS, "busybox", "busybox:1.36", "SeccompProfile", "does-not-exist"))
    plane.apply(_binding(BOUND_NS, "everything", "*", "SelinuxProfile", "web-policy"))
    answer = _decorator_step(plane, webhook)
    assert {a["kind"] for a in answer["attachments"]} == {"MutatingWebhookConfiguration", "ConfigMap"}
    return plane


def _pod(name: str, containers: list[dict[str, Any]], labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": containers, **spec},
    }


def _create(plane: ControlPlane, namespace: str, pod: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Create the pod with kubectl; the stored pod and kubectl's stderr (where warnings go)."""
    proc = plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
    return plane.kubectl_json("get", "pod", pod["metadata"]["name"], "-n", namespace), proc.stderr


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{path}/{key}"))
        return out or {path: {}}
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(_leaves(item, f"{path}/{index}"))
        return out or {path: []}
    return {path: value}


def _changes(plane: ControlPlane, pod: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The fields the webhook set: the bound pod's spec against the same pod in the unlabelled namespace."""
    got, warnings = _create(plane, BOUND_NS, pod)
    control, control_warnings = _create(plane, PLAIN_NS, pod)
    assert "Warning" not in control_warnings
    mine, theirs = _leaves(got["spec"]), _leaves(control["spec"])
    removed = {p for p in theirs if p not in mine and not any(m.startswith(p + "/") for m in mine)}
    assert removed == set(), "the webhook removed a field"
    return {path: value for path, value in mine.items() if theirs.get(path) != value}, warnings


SECCOMP_WEB = {"type": "Localhost", "localhostProfile": f"operator/{BOUND_NS}/web.json"}


def test_container_of_the_bound_image_gets_the_profile(bound: ControlPlane) -> None:
    pod = _pod("nginx", [{"name": "app", "image": "nginx:1.27"}, {"name": "pause", "image": "registry.k8s.io/pause:3.10"}])
    changed, warnings = _changes(bound, pod)
    assert changed == {
        "/containers/0/securityContext/seccompProfile/type": "Localhost",
        "/containers/0/securityContext/seccompProfile/localhostProfile": f"operator/{BOUND_NS}/web.json",
        "/securityContext/seLinuxOptions/type": SELINUX_USAGE,
    }
    assert "Warning" not in warnings


def test_init_container_is_bound_and_a_missing_profile_only_warns(bound: ControlPlane) -> None:
    pod = _pod(
        "with-init",
        [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        initContainers=[{"name": "setup", "image": "nginx:1.27"}, {"name": "tools", "image": "busybox:1.36"}],
    )
    changed, warnings = _changes(bound, pod)
    assert changed == {
        "/initContainers/0/securityContext/seccompProfile/type": "Localhost",
        "/initContainers/0/securityContext/seccompProfile/localhostProfile": f"operator/{BOUND_NS}/web.json",
        "/securityContext/seLinuxOptions/type": SELINUX_USAGE,
    }
    assert "Warning: spo: binding 'busybox' skipped for container 'tools': SeccompProfile 'does-not-exist' does not exist" in warnings


def test_profile_not_installed_yet_creates_the_pod_with_a_warning(bound: ControlPlane) -> None:
    changed, warnings = _changes(bound, _pod("redis", [{"name": "db", "image": "redis:7"}]))
    assert changed == {"/securityContext/seLinuxOptions/type": SELINUX_USAGE}
    assert "Warning: spo: binding 'redis' skipped for container 'db': SeccompProfile 'slow' is not installed yet (status Pending)" in warnings


def test_users_own_profile_is_kept_with_a_warning(bound: ControlPlane) -> None:
    own = {"seccompProfile": {"type": "RuntimeDefault"}, "seLinuxOptions": {"type": "container_t"}}
    pod = _pod("own", [{"name": "app", "image": "nginx:1.27", "securityContext": own}], securityContext={"seLinuxOptions": {"type": "spc_t"}})
    changed, warnings = _changes(bound, pod)
    assert changed == {}
    assert "Warning: spo: binding 'nginx' not applied: container 'app' already has a seccomp profile" in warnings
    assert "Warning: spo: binding 'everything' not applied: the pod already has a SELinux type" in warnings


def test_operator_pods_are_never_sent_to_the_webhook(bound: ControlPlane) -> None:
    labels = {"app.kubernetes.io/name": "security-profiles-operator"}
    changed, warnings = _changes(bound, _pod("operator-like", [{"name": "app", "image": "nginx:1.27"}], labels=labels))
    assert changed == {}
    assert "Warning" not in warnings


def test_unlabelled_namespace_is_untouched(bound: ControlPlane) -> None:
    got, warnings = _create(bound, PLAIN_NS, _pod("plain-only", [{"name": "app", "image": "nginx:1.27"}]))
    assert "securityContext" not in got["spec"]["containers"][0]
    assert got["spec"].get("securityContext") == {}
    assert "Warning" not in warnings


def test_update_is_not_mutated_and_a_new_binding_reaches_new_pods(bound: ControlPlane, webhook: WebhookServer) -> None:
    before, _ = _create(bound, BOUND_NS, _pod("late", [{"name": "web", "image": "httpd:2.4"}]))
    assert "securityContext" not in before["spec"]["containers"][0]
    bound.apply(_binding(BOUND_NS, "httpd", "httpd:2.4", "SeccompProfile", "web"))
    _decorator_step(bound, webhook)
    bound.kubectl("label", "pod", "late", "-n", BOUND_NS, "touched=yes")
    bound.kubectl("annotate", "pod", "late", "-n", BOUND_NS, "spo-e2e/updated=yes")
    after = bound.kubectl_json("get", "pod", "late", "-n", BOUND_NS)
    assert after["metadata"]["labels"]["touched"] == "yes"
    assert after["spec"] == before["spec"]
    fresh, _ = _create(bound, BOUND_NS, _pod("early", [{"name": "web", "image": "httpd:2.4"}]))
    assert fresh["spec"]["containers"][0]["securityContext"]["seccompProfile"] == SECCOMP_WEB


def test_registered_configuration_is_the_computed_one(bound: ControlPlane) -> None:
    stored = bound.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
    hooks = {w["name"]: w for w in stored["webhooks"]}
    assert set(hooks) == {"binding.spo.io", "recording.spo.io"}
    binding = hooks["binding.spo.io"]
    assert binding["rules"][0]["operations"] == ["CREATE"]
    assert binding["namespaceSelector"] == {"matchExpressions": [{"key": "spo.x-k8s.io/enable-binding", "operator": "Exists"}]}
    assert binding["sideEffects"] == "None"
    assert stored["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{OPERATOR_NS}/spo-webhook-cert"
    table = bound.kubectl_json("get", "configmap", "spo-bindings", "-n", OPERATOR_NS)
    entries = json.loads(table["data"]["bindings.json"])["namespaces"][BOUND_NS]
    assert entries["nginx:1.27"][0]["state"] == "Installed"
    assert entries["busybox:1.36"][0]["state"] == "Missing"


def test_binding_status_lists_its_pods_and_deletion_waits_for_them(bound: ControlPlane, webhook: WebhookServer) -> None:
    manifest = yaml.safe_load((REPO / "metacontroller" / "profilebinding-controller.yaml").read_text())
    step = CompositeStep(bound, webhook.base, manifest)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(webhook.ca))  # CompositeStep posts with urllib's default context
        _create(bound, BOUND_NS, _pod("held", [{"name": "app", "image": "nginx:1.27"}]))
        step.add_finalizer(BOUND_NS, "nginx")
        step.sync(BOUND_NS, "nginx")
        status = bound.kubectl_json("get", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS)["status"]
        assert f"{BOUND_NS}/held" in status["activeWorkloads"]
        assert f"{BOUND_NS}/nginx" in status["activeWorkloads"]
        assert f"{BOUND_NS}/own" not in status["activeWorkloads"]
        assert status["conditions"][0]["reason"] == "Bound"

        bound.kubectl("delete", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS, "--wait=false")
        answer = step.sync(BOUND_NS, "nginx")
        assert answer["finalized"] is False
        assert bound.kubectl_json("get", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS)["metadata"]["deletionTimestamp"]

        for pod in status["activeWorkloads"]:
            bound.kubectl("delete", "pod", pod.split("/", 1)[1], "-n", BOUND_NS, "--wait=false")
        answer = step.sync(BOUND_NS, "nginx")
        assert answer["finalized"] is True
    gone = bound.kubectl("get", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
