"""The admission policies (metacontroller/base/admission-policies.yaml) speak the project's
contract: the labels, annotation, prefixes and identities they name are the ones the code
uses. What they allow and refuse is proved against the real API server
(tests/e2e/test_admission_policies_e2e.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.configmaps import PROFILE_KINDS, PROFILE_NAME_ANNOTATION, configmap_name
from hooks.api.nodestatuslabels import NODE_NAME_LABEL, PROFILE_KIND_LABEL, node_label
from hooks.api.profilerecording import PROFILE_PARTIAL_LABEL, PROFILE_TO_RECORDING_LABEL
from hooks.api.seccompprofile import OPERATOR_PROFILE_LABEL
from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster.spod.daemonset import ENRICHER_SERVICE_ACCOUNT, SERVICE_ACCOUNT

ROOT = Path(__file__).parents[2]
FILE = ROOT / "metacontroller" / "base" / "admission-policies.yaml"
DOCS = [doc for doc in yaml.safe_load_all(FILE.read_text()) if doc]
POLICIES = {d["metadata"]["name"]: d for d in DOCS if d["kind"] == "ValidatingAdmissionPolicy"}
BINDINGS = {
    d["metadata"]["name"]: d for d in DOCS if d["kind"] == "ValidatingAdmissionPolicyBinding"
}


def _text(policy: dict[str, Any]) -> str:
    return yaml.safe_dump(policy["spec"])


def _variable(policy: dict[str, Any], name: str) -> str:
    [expression] = [v["expression"] for v in policy["spec"]["variables"] if v["name"] == name]
    return str(expression)


def _cel_literal(expression: str) -> Any:
    """A CEL list or map literal of strings, read as Python would read it."""
    return ast.literal_eval(expression)


def test_every_policy_is_bound_to_deny_and_fails_closed() -> None:
    assert set(POLICIES) == {
        "spo-profile-configmaps",
        "spo-node-statuses",
        "spo-log-enricher-profiles",
        "spo-operator-profiles",
    }
    assert set(BINDINGS) == set(POLICIES)
    for name, binding in BINDINGS.items():
        assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
        assert POLICIES[name]["spec"]["failurePolicy"] == "Fail"


def test_the_install_includes_them() -> None:
    kustomization = yaml.safe_load(
        (ROOT / "metacontroller" / "base" / "kustomization.yaml").read_text()
    )
    assert FILE.name in kustomization["resources"]


def test_configmap_policy_names_the_contract() -> None:
    policy = POLICIES["spo-profile-configmaps"]
    text = _text(policy)
    for word in (PROFILE_KIND_LABEL, PROFILE_NAME_ANNOTATION, f"{GROUP}/"):
        assert f"'{word}" in text, word
    prefixes = _cel_literal(_variable(policy, "prefixes"))
    assert prefixes == {kind: configmap_name(kind, "") for kind in PROFILE_KINDS}
    assert (
        _variable(policy, "metacontroller")
        == "'system:serviceaccount:metacontroller:metacontroller'"
    )
    assert set(_cel_literal(_variable(policy, "collectors"))) == {
        "system:serviceaccount:kube-system:generic-garbage-collector",
        "system:serviceaccount:kube-system:namespace-controller",
        "system:kube-controller-manager",
    }
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE", "DELETE"],
        "resources": ["configmaps"],
    }


def test_the_identity_is_the_first_variable_as_the_documented_patch_says() -> None:
    policy = POLICIES["spo-profile-configmaps"]
    assert policy["spec"]["variables"][0]["name"] == "metacontroller"
    assert '"path": "/spec/variables/0/expression"' in FILE.read_text()


@pytest.mark.parametrize(
    ("policy", "account"),
    [
        ("spo-node-statuses", SERVICE_ACCOUNT),
        ("spo-log-enricher-profiles", ENRICHER_SERVICE_ACCOUNT),
    ],
)
def test_node_agent_policies_match_the_daemonsets_service_accounts(
    policy: str, account: str
) -> None:
    [condition] = POLICIES[policy]["spec"]["matchConditions"]
    assert f"'system:serviceaccount:{OPERATOR_NAMESPACE}:{account}'" in condition["expression"]
    manifests = "\n".join(p.read_text() for p in (ROOT / "metacontroller" / "base").glob("*.yaml"))
    assert re.search(
        rf"kind: ServiceAccount\nmetadata:\n  name: {account}\n  namespace: {OPERATOR_NAMESPACE}\n",
        manifests,
    )


def test_node_status_policy_knows_how_a_long_node_name_is_labelled() -> None:
    text = _text(POLICIES["spo-node-statuses"])
    assert f"'{NODE_NAME_LABEL}'" in text and "'authentication.kubernetes.io/node-name'" in text
    long = "n" * 80
    label = node_label(long)
    assert len(label) == 63 and label.startswith(long[:46] + "-")
    assert "<= 63" in text and "substring(0, 46)" in text and "== 63" in text
    assert node_label("n" * 63) == "n" * 63


def test_log_enricher_policy_names_the_recording_labels() -> None:
    text = _text(POLICIES["spo-log-enricher-profiles"])
    assert f"'{PROFILE_TO_RECORDING_LABEL}'" in text and f"'{PROFILE_PARTIAL_LABEL}'" in text


def test_operator_profile_policy_names_the_label_the_controllers_select_on() -> None:
    text = _text(POLICIES["spo-operator-profiles"])
    assert f"'{OPERATOR_PROFILE_LABEL}'" in text and f"'{OPERATOR_NAMESPACE}'" in text
    base = ROOT / "metacontroller" / "base"
    for manifest in ("operator-profile-controller.yaml", "seccompprofile-controller.yaml"):
        [controller] = yaml.safe_load_all((base / manifest).read_text())
        selector = controller["spec"]["parentResource"]["labelSelector"]
        assert OPERATOR_PROFILE_LABEL in yaml.safe_dump(selector), manifest
    [*_, recording] = yaml.safe_load_all((base / "recording-profile.yaml").read_text())
    assert recording["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert recording["metadata"]["labels"][OPERATOR_PROFILE_LABEL] == "true"
