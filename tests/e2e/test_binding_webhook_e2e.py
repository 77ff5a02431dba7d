"""The binding webhook, called by the real kube-apiserver over HTTPS through its Service.

``spo webhook`` runs with a certificate for the Service's name (made with openssl, signed by a
throw-away CA) and a token of its ServiceAccount, and keeps its tables from its own watches;
an EndpointSlice of the Service ``spo-webhook`` points at it. The webhook configuration the
namespace decorator computes is attached as it is (one faithful sync of the emulated
Metacontroller, ``DecoratorStep``) and cert-manager's CA injector's stand-in writes the CA
into it. The server and these steps are shared with the recording e2e
(``tests.helpers.webhook_server``).

Pods are created in a namespace labelled ``spo.x-k8s.io/enable-binding`` and,
as a control, the same pod in an unlabelled namespace: the difference between
the two read-back specs is exactly what the webhook changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_step import CompositeStep, DecoratorStep
from tests.helpers.pod_usage import label_pods
from tests.helpers.webhook_server import (
    CONFIGURATION,
    OPERATOR_NS,
    REPO,
    WebhookServer,
    changes,
    serving_webhooks,
    wait_admitted,
)
from tests.helpers.webhook_server import create as _create
from tests.helpers.webhook_server import decorator_step as _decorator_step
from tests.helpers.webhook_server import pod as _pod
from tests.helpers.webhook_server import with_status as _with_status

pytestmark = pytest.mark.e2e
BOUND_NS = "bind-e2e"
PLAIN_NS = "bind-e2e-plain"
SELINUX_USAGE = f"web-policy_{BOUND_NS}.process"


@pytest.fixture(scope="module")
def webhook(
    installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    try:
        with serving_webhooks(tmp_path_factory.mktemp("binding-webhook"), installed) as server:
            yield server
    finally:
        installed.kubectl(
            "delete",
            "mutatingwebhookconfiguration",
            CONFIGURATION,
            "--ignore-not-found",
            check=False,
        )
        for namespace in (BOUND_NS, PLAIN_NS):
            installed.kubectl(
                "delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False
            )


def _changes(plane: ControlPlane, manifest: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The fields the webhook set: the bound pod's spec against the same pod in the unlabelled
    namespace."""
    changed, _, warnings = changes(plane, manifest, BOUND_NS, PLAIN_NS)
    return changed, warnings


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


@pytest.fixture(scope="module")
def bound(installed: ControlPlane, webhook: WebhookServer) -> ControlPlane:
    plane = installed
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": BOUND_NS, "labels": {"spo.x-k8s.io/enable-binding": ""}},
        }
    )
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAIN_NS}})
    for namespace in (BOUND_NS, PLAIN_NS):
        _seccomp(plane, namespace, "web", "Installed")
        plane.apply(_binding(namespace, "nginx", "nginx:1.27", "SeccompProfile", "web"))
    _seccomp(plane, BOUND_NS, "slow", "Pending")
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": "SelinuxProfile",
            "metadata": {"name": "web-policy", "namespace": BOUND_NS},
            "spec": {},
        }
    )
    _with_status(
        plane,
        f"selinuxprofiles.{GROUP}",
        BOUND_NS,
        "web-policy",
        {"status": "Installed", "usage": SELINUX_USAGE},
    )
    plane.apply(_binding(BOUND_NS, "redis", "redis:7", "SeccompProfile", "slow"))
    plane.apply(_binding(BOUND_NS, "busybox", "busybox:1.36", "SeccompProfile", "does-not-exist"))
    plane.apply(_binding(BOUND_NS, "everything", "*", "SelinuxProfile", "web-policy"))
    answer = _decorator_step(plane, webhook)
    assert [a["kind"] for a in answer["attachments"]] == ["MutatingWebhookConfiguration"]
    # The webhook's watches have seen every object applied above (a dry run calls it).
    probe = _pod("probe", [{"name": "app", "image": "redis:7"}])
    got = wait_admitted(
        plane,
        BOUND_NS,
        probe,
        lambda pod: (
            (pod["spec"].get("securityContext") or {}).get("seLinuxOptions")
            == {"type": SELINUX_USAGE}
        ),
    )
    assert got["spec"]["securityContext"]["seLinuxOptions"] == {"type": SELINUX_USAGE}
    return plane


SECCOMP_WEB = {"type": "Localhost", "localhostProfile": f"operator/{BOUND_NS}/web.json"}


def test_container_of_the_bound_image_gets_the_profile(bound: ControlPlane) -> None:
    pod = _pod(
        "nginx",
        [
            {"name": "app", "image": "nginx:1.27"},
            {"name": "pause", "image": "registry.k8s.io/pause:3.10"},
        ],
    )
    changed, warnings = _changes(bound, pod)
    assert changed == {
        "/containers/0/securityContext/seccompProfile/type": "Localhost",
        "/containers/0/securityContext/seccompProfile/localhostProfile": (
            f"operator/{BOUND_NS}/web.json"
        ),
        "/securityContext/seLinuxOptions/type": SELINUX_USAGE,
    }
    assert "Warning" not in warnings


def test_init_container_is_bound_and_a_missing_profile_only_warns(bound: ControlPlane) -> None:
    pod = _pod(
        "with-init",
        [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        initContainers=[
            {"name": "setup", "image": "nginx:1.27"},
            {"name": "tools", "image": "busybox:1.36"},
        ],
    )
    changed, warnings = _changes(bound, pod)
    assert changed == {
        "/initContainers/0/securityContext/seccompProfile/type": "Localhost",
        "/initContainers/0/securityContext/seccompProfile/localhostProfile": (
            f"operator/{BOUND_NS}/web.json"
        ),
        "/securityContext/seLinuxOptions/type": SELINUX_USAGE,
    }
    assert (
        "Warning: spo: binding 'busybox' skipped for container 'tools': "
        "SeccompProfile 'does-not-exist' does not exist" in warnings
    )


def test_profile_not_installed_yet_creates_the_pod_with_a_warning(bound: ControlPlane) -> None:
    changed, warnings = _changes(bound, _pod("redis", [{"name": "db", "image": "redis:7"}]))
    assert changed == {"/securityContext/seLinuxOptions/type": SELINUX_USAGE}
    assert (
        "Warning: spo: binding 'redis' skipped for container 'db': "
        "SeccompProfile 'slow' is not installed yet (status Pending)" in warnings
    )


def test_users_own_profile_is_kept_with_a_warning(bound: ControlPlane) -> None:
    own = {"seccompProfile": {"type": "RuntimeDefault"}, "seLinuxOptions": {"type": "container_t"}}
    pod = _pod(
        "own",
        [{"name": "app", "image": "nginx:1.27", "securityContext": own}],
        securityContext={"seLinuxOptions": {"type": "spc_t"}},
    )
    changed, warnings = _changes(bound, pod)
    assert changed == {}
    assert (
        "Warning: spo: binding 'nginx' not applied: container 'app' already has a seccomp profile"
        in warnings
    )
    assert (
        "Warning: spo: binding 'everything' not applied: the pod already has a SELinux type"
        in warnings
    )


def test_operator_pods_are_never_sent_to_the_webhook(bound: ControlPlane) -> None:
    labels = {"app.kubernetes.io/name": "security-profiles-operator"}
    changed, warnings = _changes(
        bound, _pod("operator-like", [{"name": "app", "image": "nginx:1.27"}], labels=labels)
    )
    assert changed == {}
    assert "Warning" not in warnings


def test_unlabelled_namespace_is_untouched(bound: ControlPlane) -> None:
    got, warnings = _create(
        bound, PLAIN_NS, _pod("plain-only", [{"name": "app", "image": "nginx:1.27"}])
    )
    assert "securityContext" not in got["spec"]["containers"][0]
    assert got["spec"].get("securityContext") == {}
    assert "Warning" not in warnings


def test_update_is_not_mutated_and_a_new_binding_reaches_new_pods(bound: ControlPlane) -> None:
    before, _ = _create(bound, BOUND_NS, _pod("late", [{"name": "web", "image": "httpd:2.4"}]))
    assert "securityContext" not in before["spec"]["containers"][0]
    bound.apply(_binding(BOUND_NS, "httpd", "httpd:2.4", "SeccompProfile", "web"))
    bound.kubectl("label", "pod", "late", "-n", BOUND_NS, "touched=yes")
    bound.kubectl("annotate", "pod", "late", "-n", BOUND_NS, "spo-e2e/updated=yes")
    after = bound.kubectl_json("get", "pod", "late", "-n", BOUND_NS)
    assert after["metadata"]["labels"]["touched"] == "yes"
    assert after["spec"] == before["spec"]
    fresh, _ = _create(bound, BOUND_NS, _pod("early", [{"name": "web", "image": "httpd:2.4"}]))
    assert fresh["spec"]["containers"][0]["securityContext"]["seccompProfile"] == SECCOMP_WEB


def test_a_new_binding_and_its_new_profile_apply_to_a_pod_created_at_once(
    bound: ControlPlane,
) -> None:
    """The README's promise: ``kubectl apply`` of a binding (its profile Installed), then at once
    a pod, and the pod has the profile, within a second of the binding's creation."""
    _seccomp(bound, BOUND_NS, "fresh", "Installed")
    started = time.monotonic()
    bound.apply(_binding(BOUND_NS, "fresh", "quay.io/fresh:1", "SeccompProfile", "fresh"))
    got, warnings = _create(
        bound, BOUND_NS, _pod("fresh", [{"name": "a", "image": "quay.io/fresh:1"}])
    )
    took = time.monotonic() - started
    assert got["spec"]["containers"][0]["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": f"operator/{BOUND_NS}/fresh.json",
    }
    assert "fresh" not in warnings
    assert took < 1.0, f"binding to bound pod took {took:.2f} s"


def test_a_binding_deleted_stops_binding_at_once(bound: ControlPlane) -> None:
    _seccomp(bound, BOUND_NS, "brief", "Installed")
    bound.apply(_binding(BOUND_NS, "brief", "quay.io/brief:1", "SeccompProfile", "brief"))
    manifest = _pod("brief", [{"name": "a", "image": "quay.io/brief:1"}])
    wait_admitted(
        bound, BOUND_NS, manifest, lambda pod: "securityContext" in pod["spec"]["containers"][0]
    )
    bound.kubectl("delete", f"profilebindings.{GROUP}", "brief", "-n", BOUND_NS)
    got, _ = _create(bound, BOUND_NS, manifest)
    assert "seccompProfile" not in (got["spec"]["containers"][0].get("securityContext") or {})


def test_registered_configuration_is_the_computed_one(bound: ControlPlane) -> None:
    stored = bound.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
    hooks = {w["name"]: w for w in stored["webhooks"]}
    assert set(hooks) == {"binding.spo.io", "recording.spo.io"}
    binding = hooks["binding.spo.io"]
    assert binding["rules"][0]["operations"] == ["CREATE"]
    assert binding["namespaceSelector"] == {
        "matchExpressions": [{"key": "spo.x-k8s.io/enable-binding", "operator": "Exists"}]
    }
    assert binding["sideEffects"] == "None"
    assert (
        stored["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == f"{OPERATOR_NS}/spo-webhook-cert"
    )
    gone = bound.kubectl("get", "configmap", "spo-bindings", "-n", OPERATOR_NS, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr  # no table travels by ConfigMap


def test_configuration_keeps_its_service_route_and_the_injected_ca_across_syncs(
    bound: ControlPlane, webhook: WebhookServer
) -> None:
    """The API server reaches the webhooks through the Service (the tests above), with the CA
    cert-manager's injector wrote; Metacontroller's next syncs keep both, and a sync that
    changes nothing writes nothing."""
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "namespace-decorator.yaml").read_text()
    )
    step = DecoratorStep(bound, webhook.hooks, manifest)
    # The first sync after the injection may record the bundle in the last applied
    # configuration (one update); from then on the answer is what is stored.
    step.sync("v1", "Namespace", None, OPERATOR_NS)
    injected = bound.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
    bundles = [w["clientConfig"].get("caBundle") for w in injected["webhooks"]]
    assert all(bundles)
    updates = step.api.requests["update"]
    step.sync("v1", "Namespace", None, OPERATOR_NS)
    step.sync("v1", "Namespace", None, OPERATOR_NS)
    assert step.api.requests["update"] == updates
    stored = bound.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
    assert stored["metadata"]["resourceVersion"] == injected["metadata"]["resourceVersion"]
    assert [w["clientConfig"] for w in stored["webhooks"]] == [
        w["clientConfig"] for w in injected["webhooks"]
    ]
    assert all(set(w["clientConfig"]) == {"service", "caBundle"} for w in stored["webhooks"])

    def webhook_options(options: list[dict[str, str]] | None) -> None:
        patch = json.dumps({"spec": {"webhookOptions": options}})
        bound.kubectl(
            "patch",
            f"securityprofilesoperatordaemons.{GROUP}",
            "spod",
            "-n",
            OPERATOR_NS,
            "--type=merge",
            "-p",
            patch,
        )
        step.sync("v1", "Namespace", None, OPERATOR_NS)

    try:
        # The configuration changes: Metacontroller updates it, and the bundle stays.
        webhook_options([{"name": "recording.spo.io", "failurePolicy": "Ignore"}])
        after = bound.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
        assert after["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]
        assert {w["name"]: w["failurePolicy"] for w in after["webhooks"]} == {
            "binding.spo.io": "Fail",
            "recording.spo.io": "Ignore",
        }
        assert [w["clientConfig"].get("caBundle") for w in after["webhooks"]] == bundles
    finally:
        webhook_options(None)


def test_binding_status_lists_its_pods_and_deletion_waits_for_them(
    bound: ControlPlane, webhook: WebhookServer
) -> None:
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "profilebinding-controller.yaml").read_text()
    )
    step = CompositeStep(bound, webhook.hooks, manifest)
    _create(bound, BOUND_NS, _pod("held", [{"name": "app", "image": "nginx:1.27"}]))
    label_pods(bound, webhook.hooks, BOUND_NS)  # spo-pod-usage, on the pods' creation
    step.add_finalizer(BOUND_NS, "nginx")
    step.sync(BOUND_NS, "nginx")
    status = bound.kubectl_json("get", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS)[
        "status"
    ]
    assert f"{BOUND_NS}/held" in status["activeWorkloads"]
    assert f"{BOUND_NS}/nginx" in status["activeWorkloads"]
    assert f"{BOUND_NS}/own" not in status["activeWorkloads"]
    assert status["conditions"][0]["reason"] == "Bound"

    bound.kubectl("delete", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS, "--wait=false")
    answer = step.sync(BOUND_NS, "nginx")
    assert answer["finalized"] is False
    assert bound.kubectl_json("get", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS)[
        "metadata"
    ]["deletionTimestamp"]

    for pod in status["activeWorkloads"]:
        bound.kubectl("delete", "pod", pod.split("/", 1)[1], "-n", BOUND_NS, "--wait=false")
    answer = step.sync(BOUND_NS, "nginx")
    assert answer["finalized"] is True
    gone = bound.kubectl("get", f"profilebindings.{GROUP}", "nginx", "-n", BOUND_NS, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
