"""The MutatingWebhookConfiguration of the operator, computed from the spod's ``webhookOptions``.

Two webhooks, ``binding.spo.io`` and ``recording.spo.io``, both on pod CREATE,
served by the ``spo-webhook`` Service over HTTPS. Defaults: only namespaces
that carry the enabling label (any value), failure policy Fail, and never the
operator's own pods. A ``webhookOptions`` entry whose name is one of the
webhooks replaces that webhook's ``failurePolicy``, ``namespaceSelector`` or
``objectSelector`` (each only when set); entries of other names are ignored,
as in the Go operator.

The CA bundle is not made here: cert-manager's CA injector fills it in from the
``cert-manager.io/inject-ca-from`` annotation (or an admin does, see
metacontroller/webhook-tls.md), and the answer must keep it. Metacontroller applies
attachments with its own client-side three-way merge (``pkg/dynamic/apply/apply.go``,
``Merge``): a list is merged item by item only when all its items share one of the keys of
``knownMergeKeys``, and replaced whole otherwise. Webhooks share ``name``, which the main
line of that file lists (``mountPath`` was put before it by Metacontroller's PR #663); a
variant without ``name`` (the branch of its unmerged PR #646) would replace the ``webhooks``
list whole on every update and drop a ``caBundle`` the answer lacked. So that the answer
does not depend on which, :func:`with_observed_ca` carries the ``caBundle`` of the observed
configuration over, webhook by webhook. The fields the API server defaults
(``matchPolicy``, ``reinvocationPolicy``, ``timeoutSeconds``, the rules' ``scope``, the
service's ``port``) are written out as it defaults them, so that the stored object equals
the answer and a sync that changes nothing sends no update.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hooks.api import spod as spod_api
from hooks.api.profilebinding import ENABLE_BINDING_LABEL
from hooks.api.profilerecording import ENABLE_RECORDING_LABEL
from hooks.api.spod import OPERATOR_NAMESPACE

NAME = "spo-mutating-webhook-configuration"
API_VERSION = "admissionregistration.k8s.io/v1"
KIND = "MutatingWebhookConfiguration"
SERVICE = "spo-webhook"
SERVICE_PORT = 443
CERTIFICATE = "spo-webhook-cert"
INJECT_CA_ANNOTATION = "cert-manager.io/inject-ca-from"
BINDING_PATH = "/mutate-v1-pod-binding"
RECORDING_PATH = "/mutate-v1-pod-recording"
TIMEOUT_SECONDS = 10
OPERATOR_POD_NAMES = ("security-profiles-operator", "spo-nodesync")
"""``app.kubernetes.io/name`` of the operator's own pods (hooks and nodesync): never mutated."""


@dataclass(frozen=True)
class _Webhook:
    name: str
    path: str
    namespace_label: str


WEBHOOKS = (
    _Webhook(spod_api.BINDING_WEBHOOK, BINDING_PATH, ENABLE_BINDING_LABEL),
    _Webhook(spod_api.RECORDING_WEBHOOK, RECORDING_PATH, ENABLE_RECORDING_LABEL),
)


def _default_object_selector() -> dict[str, Any]:
    return {
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/name",
                "operator": "NotIn",
                "values": list(OPERATOR_POD_NAMES),
            }
        ]
    }


def _webhook(hook: _Webhook, options: spod_api.WebhookOptions | None) -> dict[str, Any]:
    namespace_selector: dict[str, Any] = {
        "matchExpressions": [{"key": hook.namespace_label, "operator": "Exists"}]
    }
    object_selector = _default_object_selector()
    failure_policy = spod_api.FailurePolicy.FAIL.value
    if options is not None:
        if options.failurePolicy is not None:
            failure_policy = options.failurePolicy.value
        if options.namespaceSelector is not None:
            namespace_selector = options.namespaceSelector.to_wire()
        if options.objectSelector is not None:
            object_selector = options.objectSelector.to_wire()
    return {
        "name": hook.name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "clientConfig": {
            "service": {
                "name": SERVICE,
                "namespace": OPERATOR_NAMESPACE,
                "path": hook.path,
                "port": SERVICE_PORT,
            }
        },
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ],
        "namespaceSelector": namespace_selector,
        "objectSelector": object_selector,
    }


def desired(spec: spod_api.SPODSpec | None) -> dict[str, Any] | None:
    """The webhook configuration for the daemon's spec (defaults when there is no spod),
    or None when the spod says the configuration is deployed statically."""
    if spec is not None and spec.staticWebhookConfig:
        return None
    options = {
        option.name: option
        for option in (spec.webhookOptions if spec and spec.webhookOptions else [])
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": NAME,
            "labels": {"app.kubernetes.io/name": "security-profiles-operator"},
            "annotations": {INJECT_CA_ANNOTATION: f"{OPERATOR_NAMESPACE}/{CERTIFICATE}"},
        },
        "webhooks": [_webhook(hook, options.get(hook.name)) for hook in WEBHOOKS],
    }


def with_observed_ca(configuration: dict[str, Any], observed: Any) -> dict[str, Any]:
    """``configuration`` with the ``clientConfig.caBundle`` that each webhook of the same name
    has in ``observed`` (the stored configuration: the CA injector's, or an admin's, bundle)."""
    hooks = observed.get("webhooks") if isinstance(observed, dict) else None
    bundles: dict[str, str] = {}
    for hook in hooks if isinstance(hooks, list) else []:
        client = hook.get("clientConfig") if isinstance(hook, dict) else None
        bundle = client.get("caBundle") if isinstance(client, dict) else None
        if isinstance(bundle, str) and bundle and isinstance(hook.get("name"), str):
            bundles[hook["name"]] = bundle
    kept = copy.deepcopy(configuration)
    for hook in kept["webhooks"]:
        if hook["name"] in bundles:
            hook["clientConfig"]["caBundle"] = bundles[hook["name"]]
    return kept
