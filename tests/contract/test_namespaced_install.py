"""The single-namespace install (metacontroller/namespaced/), as kustomize renders it: nodesync
and the log enricher have a Role and a RoleBinding each in one namespace and no cluster-wide
rights (but nodesync's right to check who reads its metrics), the spod tells their DaemonSets
which namespace, and everything else is the default install unchanged."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.cluster.spod import daemonset
from tests.helpers.controlplane import ControlPlaneUnavailable, ensure_binaries
from tests.helpers.unavailable import unavailable

ROOT = Path(__file__).parents[2]
BASE = ROOT / "metacontroller"
NAMESPACED = ROOT / "metacontroller" / "namespaced"
OPERATOR_NS = "security-profiles-operator"
NODESYNC = "spo-nodesync"
LOG_ENRICHER = "spo-log-enricher"
WEBHOOK = "spo-webhook"
ACCOUNTS = (NODESYNC, LOG_ENRICHER, WEBHOOK)


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    try:
        return str(ensure_binaries() / "kubectl")
    except ControlPlaneUnavailable as error:
        unavailable(f"no kubectl to render the kustomization: {error}")


def render(folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {key(doc): doc for doc in docs}


def binds(doc: dict[str, Any], account: str) -> bool:
    return any(
        s.get("kind") == "ServiceAccount" and s.get("name") == account
        for s in doc.get("subjects") or []
    )


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(BASE)


@pytest.fixture(scope="module")
def namespaced() -> list[dict[str, Any]]:
    return render(NAMESPACED)


# nodesync checks who reads its metrics (docs/metrics.md): TokenReviews and
# SubjectAccessReviews exist cluster-wide only, and give no access to any object.
METRICS_REVIEWER = ("ClusterRoleBinding", "", "spo-metrics-reviewer")
REVIEWS = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    },
]


@pytest.mark.parametrize("account", ACCOUNTS)
def test_the_node_agents_have_no_cluster_wide_rights(
    namespaced: list[dict[str, Any]], account: str
) -> None:
    """None but, for nodesync and the webhook, the two reviews that check a metrics reader."""
    cluster_wide = [
        key(doc)
        for doc in namespaced
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding")
        and (doc["metadata"]["name"] == account or binds(doc, account))
    ]
    assert cluster_wide == ([METRICS_REVIEWER] if account in (NODESYNC, WEBHOOK) else [])
    reviewer = by_key(namespaced)[("ClusterRole", "", "spo-metrics-reviewer")]
    assert reviewer["rules"] == REVIEWS
    bindings = [doc for doc in namespaced if binds(doc, account) and key(doc) != METRICS_REVIEWER]
    assert [key(doc) for doc in bindings] == [("RoleBinding", OPERATOR_NS, account)]


@pytest.mark.parametrize("account", ACCOUNTS)
def test_the_role_grants_the_cluster_roles_rules_in_one_namespace(
    base: list[dict[str, Any]], namespaced: list[dict[str, Any]], account: str
) -> None:
    cluster_role = by_key(base)[("ClusterRole", "", account)]
    objects = by_key(namespaced)
    role = objects[("Role", OPERATOR_NS, account)]
    binding = objects[("RoleBinding", OPERATOR_NS, account)]
    assert role["rules"] == cluster_role["rules"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": account,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": OPERATOR_NS}
    ]
    for doc in (role, binding):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_everything_else_is_the_default_install(
    base: list[dict[str, Any]], namespaced: list[dict[str, Any]]
) -> None:
    before, after = by_key(copy.deepcopy(base)), by_key(copy.deepcopy(namespaced))
    assert set(before) - set(after) == {
        (kind, "", account)
        for kind in ("ClusterRole", "ClusterRoleBinding")
        for account in ACCOUNTS
    }
    assert set(after) - set(before) == {
        (kind, OPERATOR_NS, account) for kind in ("Role", "RoleBinding") for account in ACCOUNTS
    }
    spod = ("SecurityProfilesOperatorDaemon", OPERATOR_NS, "spod")
    webhook = ("Deployment", OPERATOR_NS, WEBHOOK)
    changed = {k for k in set(before) & set(after) if before[k] != after[k]}
    assert changed == {spod, webhook}
    for deployment in (before[webhook], after[webhook]):
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        assert env[0]["name"] == "WATCH_NAMESPACE"
        value = env[0].pop("value")
        assert value == ("" if deployment is before[webhook] else OPERATOR_NS)
    assert after[webhook] == before[webhook]
    annotations = after[spod]["metadata"].pop("annotations")
    assert annotations == {daemonset.WATCH_NAMESPACE_ANNOTATION: OPERATOR_NS}
    assert after[spod] == before[spod]


def test_the_spod_runs_nodesync_and_the_log_enricher_on_the_namespace_of_their_roles(
    namespaced: list[dict[str, Any]],
) -> None:
    [raw] = [doc for doc in namespaced if doc["kind"] == "SecurityProfilesOperatorDaemon"]
    raw = copy.deepcopy(raw)
    raw["spec"]["enableLogEnricher"] = True
    daemonsets = daemonset.daemonsets(SecurityProfilesOperatorDaemon.model_validate(raw))
    roles = {
        doc["metadata"]["name"]: doc["metadata"]["namespace"]
        for doc in namespaced
        if doc["kind"] == "Role"
    }
    assert roles == {NODESYNC: OPERATOR_NS, LOG_ENRICHER: OPERATOR_NS, WEBHOOK: OPERATOR_NS}
    for ds, container in zip(daemonsets, ("nodesync", "log-enricher"), strict=True):
        pod = ds["spec"]["template"]["spec"]
        [agent] = [c for c in pod["containers"] if c["name"] == container]
        env = {e["name"]: e.get("value") for e in agent["env"]}
        assert env["WATCH_NAMESPACE"] == roles[pod["serviceAccountName"]]


def documented_overlay() -> str:
    """The overlay that kustomization.yaml's comment shows for choosing another namespace."""
    lines = (NAMESPACED / "kustomization.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "my-install/kustomization.yaml" in line)
    block: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[len("#   ") :])
    assert block, "no example overlay in the comment"
    return "\n".join(block) + "\n"


def test_the_documented_overlay_moves_the_roles_and_the_spod_together(tmp_path: Path) -> None:
    text = documented_overlay()
    assert "../metacontroller/namespaced" in text
    overlay = tmp_path / "my-install"
    overlay.mkdir()
    relative = os.path.relpath(NAMESPACED, overlay)
    (overlay / "kustomization.yaml").write_text(
        text.replace("../metacontroller/namespaced", relative)
    )
    docs = render(overlay)
    objects = by_key(docs)
    assert not any(
        doc["kind"] in ("Role", "RoleBinding") and key(doc)[1] == OPERATOR_NS for doc in docs
    )
    for account in ACCOUNTS:
        assert ("Role", "team-a", account) in objects
        binding = objects[("RoleBinding", "team-a", account)]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": OPERATOR_NS}
        ]
        # The operator itself, and the agents' ServiceAccounts, stay where they were.
        assert ("ServiceAccount", OPERATOR_NS, account) in objects
    spod = objects[("SecurityProfilesOperatorDaemon", OPERATOR_NS, "spod")]
    assert spod["metadata"]["annotations"] == {daemonset.WATCH_NAMESPACE_ANNOTATION: "team-a"}
