"""The NetworkPolicies of the hook service and the webhook, as kustomize renders the install: the
sync hooks' port admits Metacontroller's namespace only, the hooks' metrics port and the webhook
port any source (Prometheus, the API server), and the overlay its comment shows moves the first to
another namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers.unavailable import unavailable

ROOT = Path(__file__).parents[2]
INSTALL = ROOT / "metacontroller"
POLICY = INSTALL / "base" / "networkpolicy.yaml"
HOOKS_PORT, WEBHOOK_PORT = 8080, 8443


def _render(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        unavailable("no kubectl to render the kustomization")
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [policy] = [
        d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "spo-hooks"
    ]
    return policy


def _hook_pods(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "spo-hooks"
    ]
    return dict(deployment["spec"]["template"])


@pytest.fixture(scope="module")
def installed() -> list[dict[str, Any]]:
    return _render(INSTALL)


def test_policy_validates() -> None:
    for policy in yaml.safe_load_all(POLICY.read_text()):
        kubernetes_validate.validate(policy, kubernetes_validate.latest_version(), strict=True)


def test_the_webhook_pods_admit_their_port_from_anyone(installed: list[dict[str, Any]]) -> None:
    [policy] = [
        d
        for d in installed
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "spo-webhook"
    ]
    [deployment] = [
        d for d in installed if d["kind"] == "Deployment" and d["metadata"]["name"] == "spo-webhook"
    ]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress: the API server, unrestricted
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": WEBHOOK_PORT}]}]


def test_policy_selects_the_hook_pods_and_their_two_ports(installed: list[dict[str, Any]]) -> None:
    policy = _policy(installed)
    pods = _hook_pods(installed)
    labels = pods["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == "security-profiles-operator"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ports = {p["containerPort"] for c in pods["spec"]["containers"] for p in c["ports"]}
    assert ports == {HOOKS_PORT, WEBHOOK_PORT}


def test_only_metacontroller_reaches_the_sync_hooks_and_anyone_the_webhooks(
    installed: list[dict[str, Any]],
) -> None:
    rules = _policy(installed)["spec"]["ingress"]
    by_port = {port["port"]: rule for rule in rules for port in rule["ports"]}
    assert set(by_port) == {HOOKS_PORT, WEBHOOK_PORT}
    assert by_port[HOOKS_PORT]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "metacontroller"}}}
    ]
    assert "from" not in by_port[WEBHOOK_PORT]  # the API server, wherever it is


def _documented_overlay() -> str:
    lines = POLICY.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "my-install/kustomization.yaml" in line)
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[len("#   ") :])
    return "\n".join(block) + "\n"


def test_the_documented_overlay_moves_metacontroller_namespace(tmp_path: Path) -> None:
    overlay = tmp_path / "my-install"
    overlay.mkdir()
    text = _documented_overlay()
    assert "../metacontroller" in text
    (overlay / "kustomization.yaml").write_text(
        text.replace("../metacontroller", os.path.relpath(INSTALL, overlay))
    )
    rules = _policy(_render(overlay))["spec"]["ingress"]
    assert rules[0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "my-mc"}}}
    ]
    assert rules[0]["ports"] == [{"protocol": "TCP", "port": HOOKS_PORT}]
