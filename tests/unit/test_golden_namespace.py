"""Golden tests of the operator Namespace decorator: the webhook configuration (the binding
table is the webhook's own now: tests/unit/test_webhook_tables.py).

Each folder under tests/golden/namespace/ holds the sync ``request.json``
Metacontroller sends and the ``response.json`` the hook must answer.
``pytest --regen-golden`` rewrites the answers (tests/helpers/golden.py).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster.contract import CustomizeRequest
from hooks.cluster.namespace import decorator, webhookconfig
from tests.helpers.golden import Golden, cases, golden_folder, request_of

GOLDEN = golden_folder("namespace")
CASES = cases(GOLDEN)


def _sync(raw: dict[str, Any]) -> dict[str, Any]:
    return decorator.sync(decorator.DecoratorSyncRequest.model_validate(raw)).to_wire()


def _load(case: str) -> dict[str, Any]:
    return request_of(GOLDEN / case)


def _attachment(answer: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((a for a in answer["attachments"] if a["kind"] == kind), None)


@pytest.mark.parametrize("case", CASES)
def test_sync_matches_golden_response(case: str, golden: Golden) -> None:
    golden.check(GOLDEN / case, _sync(_load(case)))


@pytest.mark.parametrize("case", CASES)
def test_attachments_are_valid_kubernetes_objects(case: str) -> None:
    for attachment in _sync(_load(case))["attachments"]:
        kubernetes_validate.validate(attachment, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("case", CASES)
def test_answer_does_not_depend_on_the_order_of_related_objects(case: str) -> None:
    raw = _load(case)
    first = _sync(raw)
    shuffled = {
        key: dict(random.Random(7).sample(sorted(group.items()), len(group)))
        for key, group in (raw.get("related") or {}).items()
    }
    again = _sync({**raw, "related": dict(reversed(list(shuffled.items())))})
    assert again == first


def test_defaults_are_the_documented_ones() -> None:
    configuration = _attachment(
        _sync(_load("defaults-without-spod")), "MutatingWebhookConfiguration"
    )
    assert configuration is not None
    assert configuration["metadata"]["name"] == "spo-mutating-webhook-configuration"
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "security-profiles-operator/spo-webhook-cert"
    }
    hooks = {w["name"]: w for w in configuration["webhooks"]}
    assert set(hooks) == {"binding.spo.io", "recording.spo.io"}
    for name, label, path in (
        ("binding.spo.io", "spo.x-k8s.io/enable-binding", "/mutate-v1-pod-binding"),
        ("recording.spo.io", "spo.x-k8s.io/enable-recording", "/mutate-v1-pod-recording"),
    ):
        hook = hooks[name]
        assert hook["failurePolicy"] == "Fail"
        assert hook["namespaceSelector"] == {
            "matchExpressions": [{"key": label, "operator": "Exists"}]
        }
        assert hook["clientConfig"] == {
            "service": {
                "name": "spo-webhook",
                "namespace": "security-profiles-operator",
                "path": path,
                "port": 443,
            }
        }
        assert hook["rules"][0]["operations"] == ["CREATE"]
        assert hook["sideEffects"] == "None"
        excluded = hook["objectSelector"]["matchExpressions"][0]
        assert excluded["operator"] == "NotIn"
        assert "security-profiles-operator" in excluded["values"]


def test_webhook_options_replace_only_what_they_set() -> None:
    configuration = _attachment(
        _sync(_load("webhook-options-replace-defaults")), "MutatingWebhookConfiguration"
    )
    assert configuration is not None
    hooks = {w["name"]: w for w in configuration["webhooks"]}
    assert hooks["binding.spo.io"]["failurePolicy"] == "Ignore"
    assert hooks["binding.spo.io"]["objectSelector"] == {"matchLabels": {"bind-me": "yes"}}
    assert (
        hooks["binding.spo.io"]["namespaceSelector"]["matchExpressions"][0]["key"]
        == "spo.x-k8s.io/enable-binding"
    )
    assert hooks["recording.spo.io"]["failurePolicy"] == "Fail"
    assert hooks["recording.spo.io"]["namespaceSelector"]["matchExpressions"][0]["key"] == "team"


CONFIGURATIONS = "MutatingWebhookConfiguration.admissionregistration.k8s.io/v1"


def test_v2_request_names_are_read_as_the_v1_ones() -> None:
    """The install's decorator hooks are ``version: v2``: Metacontroller's v2 request
    (``pkg/controller/decorator/api/v2/hooks.go``) names the target ``parent`` and the
    attachments ``children``."""
    raw = _load("webhook-options-replace-defaults")
    v2 = {k: v for k, v in raw.items() if k not in ("object", "attachments")}
    v2["parent"] = raw["object"]
    v2["children"] = raw.get("attachments") or {}
    assert _sync(v2) == _sync(raw)


def test_a_request_naming_no_target_is_refused() -> None:
    with pytest.raises(ValueError, match="object"):
        decorator.DecoratorSyncRequest.model_validate({"controller": {}, "children": {}})


def test_injected_ca_bundle_of_the_observed_configuration_is_kept() -> None:
    """Metacontroller's apply replaces the whole ``webhooks`` list (its items share no merge
    key), so the answer itself must carry the bundle cert-manager's CA injector wrote."""
    raw = _load("defaults-without-spod")
    first = _attachment(_sync(raw), "MutatingWebhookConfiguration")
    assert first is not None
    assert all("caBundle" not in w["clientConfig"] for w in first["webhooks"])
    stored = json.loads(json.dumps(first))
    stored["webhooks"][0]["clientConfig"]["caBundle"] = "Q0EtT05F"
    stored["webhooks"][1]["clientConfig"]["caBundle"] = "Q0EtVFdP"
    observed = {CONFIGURATIONS: {stored["metadata"]["name"]: stored}}
    for names in (("object", "attachments"), ("parent", "children")):
        request = {k: v for k, v in raw.items() if k not in ("object", "attachments")}
        request[names[0]], request[names[1]] = raw["object"], observed
        again = _attachment(_sync(request), "MutatingWebhookConfiguration")
        assert again is not None
        assert again == stored


def test_configuration_spells_out_what_the_api_server_defaults() -> None:
    """The stored configuration must equal the answer, or every sync would send an update
    (and the three-way merge would fight the API server's defaulting)."""
    configuration = _attachment(
        _sync(_load("defaults-without-spod")), "MutatingWebhookConfiguration"
    )
    assert configuration is not None
    for hook in configuration["webhooks"]:
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["reinvocationPolicy"] == "Never"
        assert hook["timeoutSeconds"] == 10
        assert hook["rules"][0]["scope"] == "Namespaced"


def test_static_webhook_config_leaves_the_configuration_alone() -> None:
    answer = _sync(_load("static-webhook-config-attaches-nothing"))
    assert answer["attachments"] == []


def test_customize_asks_for_the_spod_alone() -> None:
    """No binding, recording or profile: their events cost this decorator nothing."""
    rules = decorator.customize(
        CustomizeRequest.model_validate({"parent": _load("defaults-without-spod")["object"]})
    )
    wire = rules.to_wire()["relatedResources"]
    assert wire == [
        {
            "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
            "resource": "securityprofilesoperatordaemons",
            "namespace": "security-profiles-operator",
            "names": ["spod"],
        }
    ]


def test_webhook_configuration_name_and_service_match_the_install() -> None:
    install = Path(__file__).parent.parent.parent / "metacontroller" / "base"
    assert f"name: {webhookconfig.SERVICE}\n" in (install / "webhook.yaml").read_text()
    certificate = (install / "webhook-cert-manager.yaml").read_text()
    assert f"name: {webhookconfig.CERTIFICATE}\n" in certificate
    assert f"- {webhookconfig.SERVICE}.{OPERATOR_NAMESPACE}.svc\n" in certificate
