"""Least privilege, checked by the real authorizer: what nodesync's and the log enricher's
ServiceAccounts may and may not do (the log enricher records profiles, so nodesync need not
write profiles nor read pods), and that the hooks' ServiceAccount may do nothing at all."""

from __future__ import annotations

import json

import pytest

from tests.helpers.controlplane import ControlPlane

pytestmark = pytest.mark.e2e
NAMESPACE = "security-profiles-operator"
NODESYNC = ControlPlane.impersonate_service_account(NAMESPACE, "spo-nodesync")
LOG_ENRICHER = ControlPlane.impersonate_service_account(NAMESPACE, "spo-log-enricher")
HOOKS = ControlPlane.impersonate_service_account(NAMESPACE, "spo-hooks")
STATUSES = "securityprofilenodestatuses.security-profiles-operator.x-k8s.io"
SECCOMP = "seccompprofiles.security-profiles-operator.x-k8s.io"
SELINUX = "selinuxprofiles.security-profiles-operator.x-k8s.io"
RECORDINGS = "profilerecordings.security-profiles-operator.x-k8s.io"

ALLOWED = [
    ("list", "configmaps", "--all-namespaces"),
    ("watch", "configmaps", "--all-namespaces"),
    ("create", STATUSES, "-n=team-a"),
    ("update", STATUSES, "-n=team-a"),
    ("patch", STATUSES, "-n=team-a"),
    ("delete", STATUSES, "-n=team-a"),
    ("list", STATUSES, "--all-namespaces"),
    ("create", "events", "-n=team-a"),
]
DENIED = [
    ("get", "secrets", "-n=team-a"),
    ("list", "secrets", "--all-namespaces"),
    ("get", "configmaps", "-n=kube-system"),
    ("create", "configmaps", "-n=team-a"),
    ("update", "configmaps", "-n=team-a"),
    ("delete", "configmaps", "-n=team-a"),
    ("create", SECCOMP, "-n=team-a"),
    ("update", SECCOMP, "-n=team-a"),
    ("delete", SECCOMP, "-n=team-a"),
    ("patch", f"{SECCOMP}/status", "-n=team-a"),
    ("create", SELINUX, "-n=team-a"),
    ("delete", SELINUX, "-n=team-a"),
    ("get", "pods", "-n=team-a"),
    ("list", "pods", "--all-namespaces"),
    ("watch", "pods", "--all-namespaces"),
    ("create", "pods", "-n=team-a"),
    ("list", RECORDINGS, "--all-namespaces"),
    ("list", "nodes", ""),
]

ENRICHER_ALLOWED = [
    ("create", SECCOMP, "-n=team-a"),
    ("create", SELINUX, "-n=team-a"),
    ("get", SECCOMP, "-n=team-a"),
    ("list", SECCOMP, "--all-namespaces"),
    ("delete", SECCOMP, "-n=team-a"),
    ("delete", SELINUX, "-n=team-a"),
    ("get", "pods", "-n=team-a"),
    ("list", "pods", "--all-namespaces"),
    ("watch", "pods", "--all-namespaces"),
    ("get", RECORDINGS, "-n=team-a"),
    ("list", RECORDINGS, "--all-namespaces"),
    ("watch", RECORDINGS, "--all-namespaces"),
    ("create", "events", "-n=team-a"),
]
ENRICHER_DENIED = [
    ("get", "secrets", "-n=team-a"),
    ("list", "secrets", "--all-namespaces"),
    ("update", SECCOMP, "-n=team-a"),
    ("patch", SECCOMP, "-n=team-a"),
    ("update", f"{SECCOMP}/status", "-n=team-a"),
    ("update", SELINUX, "-n=team-a"),
    ("patch", SELINUX, "-n=team-a"),
    ("create", "rawselinuxprofiles.security-profiles-operator.x-k8s.io", "-n=team-a"),
    ("create", RECORDINGS, "-n=team-a"),
    ("update", RECORDINGS, "-n=team-a"),
    ("create", STATUSES, "-n=team-a"),
    ("update", f"{STATUSES}/status", "-n=team-a"),
    ("list", "configmaps", "--all-namespaces"),
    ("get", "configmaps", "-n=team-a"),
    ("create", "configmaps", "-n=team-a"),
    ("create", "pods", "-n=team-a"),
    ("delete", "pods", "-n=team-a"),
    ("patch", "pods", "-n=team-a"),
    ("create", "pods/exec", "-n=team-a"),
    ("list", "nodes", ""),
    ("get", "nodes", ""),
    ("patch", "nodes/status", ""),
]


def _can(plane: ControlPlane, who: list[str], verb: str, resource: str, scope: str) -> bool:
    args = ["auth", "can-i", verb, resource, *who, *([scope] if scope else [])]
    result = plane.kubectl(*args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.parametrize(("verb", "resource", "scope"), ALLOWED)
def test_nodesync_can_do_what_it_needs(
    installed: ControlPlane, verb: str, resource: str, scope: str
) -> None:
    assert _can(installed, NODESYNC, verb, resource, scope)


@pytest.mark.parametrize(("verb", "resource", "scope"), DENIED)
def test_nodesync_cannot_do_more(
    installed: ControlPlane, verb: str, resource: str, scope: str
) -> None:
    assert not _can(installed, NODESYNC, verb, resource, scope)


@pytest.mark.parametrize(("verb", "resource", "scope"), ENRICHER_ALLOWED)
def test_the_log_enricher_can_do_what_it_needs(
    installed: ControlPlane, verb: str, resource: str, scope: str
) -> None:
    assert _can(installed, LOG_ENRICHER, verb, resource, scope)


@pytest.mark.parametrize(("verb", "resource", "scope"), ENRICHER_DENIED)
def test_the_log_enricher_cannot_do_more(
    installed: ControlPlane, verb: str, resource: str, scope: str
) -> None:
    assert not _can(installed, LOG_ENRICHER, verb, resource, scope)


@pytest.mark.parametrize("who", [NODESYNC, LOG_ENRICHER], ids=["nodesync", "log-enricher"])
def test_the_node_agents_are_really_refused_a_secret(
    installed: ControlPlane, who: list[str]
) -> None:
    installed.kubectl(
        "create", "secret", "generic", "s3cret", "-n", NAMESPACE, "--from-literal=k=v", check=False
    )
    result = installed.kubectl("get", "secret", "s3cret", "-n", NAMESPACE, *who, check=False)
    assert result.returncode != 0
    assert "Forbidden" in result.stderr


def test_the_log_enricher_really_creates_a_profile_but_cannot_change_it(
    installed: ControlPlane,
) -> None:
    """Not only the authorizer's word: a create of a recorded profile goes through, an update is
    refused (the admission policy spo-log-enricher-profiles also refuses an unrecorded one:
    tests/e2e/test_admission_policies_e2e.py)."""
    name = "recorded-by-the-log-enricher"
    profile = json.dumps(
        {
            "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"spo.x-k8s.io/recording-id": "rec"},
            },
            "spec": {"defaultAction": "SCMP_ACT_LOG"},
        }
    )
    installed.kubectl("delete", SECCOMP, name, "-n", NAMESPACE, "--ignore-not-found", check=False)
    created = installed.kubectl("create", "-f", "-", *LOG_ENRICHER, input=profile, check=False)
    try:
        assert created.returncode == 0, created.stderr
        patched = installed.kubectl(
            "patch",
            SECCOMP,
            name,
            "-n",
            NAMESPACE,
            "--type=merge",
            "-p",
            '{"spec": {"defaultAction": "SCMP_ACT_ALLOW"}}',
            *LOG_ENRICHER,
            check=False,
        )
        assert patched.returncode != 0
        assert "Forbidden" in patched.stderr
        refused = installed.kubectl(
            "create", "-f", "-", *NODESYNC, input=profile.replace(name, name + "-2"), check=False
        )
        assert refused.returncode != 0
        assert "Forbidden" in refused.stderr
    finally:
        installed.kubectl(
            "delete", SECCOMP, name, "-n", NAMESPACE, "--ignore-not-found", check=False
        )


@pytest.mark.parametrize("resource", ["configmaps", "pods", SECCOMP])
def test_the_hooks_service_account_has_no_rights(installed: ControlPlane, resource: str) -> None:
    assert not _can(installed, HOOKS, "list", resource, "--all-namespaces")


WEBHOOK = ControlPlane.impersonate_service_account(NAMESPACE, "spo-webhook")
BINDINGS = "profilebindings.security-profiles-operator.x-k8s.io"
WEBHOOK_READS = [BINDINGS, RECORDINGS, SECCOMP, SELINUX]
WEBHOOK_ALLOWED = [
    (verb, resource, scope)
    for resource in WEBHOOK_READS
    for verb, scope in (
        ("get", "-n=team-a"),
        ("list", "--all-namespaces"),
        ("watch", "--all-namespaces"),
    )
]
WEBHOOK_DENIED = [
    *[
        (verb, resource, "-n=team-a")
        for resource in WEBHOOK_READS
        for verb in ("create", "update", "patch", "delete")
    ],
    ("update", f"{SECCOMP}/status", "-n=team-a"),
    ("get", "secrets", "-n=team-a"),
    ("list", "secrets", "--all-namespaces"),
    ("get", "secrets", f"-n={NAMESPACE}"),
    ("get", "pods", "-n=team-a"),
    ("list", "pods", "--all-namespaces"),
    ("watch", "pods", "--all-namespaces"),
    ("list", "namespaces", ""),
    ("list", "configmaps", "--all-namespaces"),
    ("create", "configmaps", "-n=team-a"),
    ("list", STATUSES, "--all-namespaces"),
    ("list", "rawselinuxprofiles.security-profiles-operator.x-k8s.io", "--all-namespaces"),
    ("update", "mutatingwebhookconfigurations", ""),
    ("create", "events", "-n=team-a"),
]


@pytest.mark.parametrize(("verb", "resource", "scope"), WEBHOOK_ALLOWED)
def test_the_webhook_can_read_what_its_tables_are_made_of(
    installed: ControlPlane, verb: str, resource: str, scope: str
) -> None:
    assert _can(installed, WEBHOOK, verb, resource, scope)


@pytest.mark.parametrize(("verb", "resource", "scope"), WEBHOOK_DENIED)
def test_the_webhook_can_do_nothing_else(
    installed: ControlPlane, verb: str, resource: str, scope: str
) -> None:
    assert not _can(installed, WEBHOOK, verb, resource, scope)


def test_the_webhook_is_really_refused_a_secret_and_a_pod(installed: ControlPlane) -> None:
    installed.kubectl(
        "create", "secret", "generic", "s3cret", "-n", NAMESPACE, "--from-literal=k=v", check=False
    )
    for args in (("get", "secret", "s3cret"), ("get", "pods")):
        result = installed.kubectl(*args, "-n", NAMESPACE, *WEBHOOK, check=False)
        assert result.returncode != 0
        assert "Forbidden" in result.stderr


def test_the_hooks_pods_hold_no_token_but_in_their_metrics_container(
    installed: ControlPlane,
) -> None:
    """The sync hooks have no credentials: the pod mounts no token, and the one projected token
    volume is mounted by the metrics container alone (as the manifest the API server stored
    says)."""
    deployment = installed.kubectl_json("get", "deployment", "spo-hooks", "-n", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    tokens = {
        v["name"]
        for v in pod["volumes"]
        if any("serviceAccountToken" in s for s in (v.get("projected") or {}).get("sources", []))
    }
    holders = {
        c["name"]
        for c in pod["containers"]
        if any(m["name"] in tokens for m in c.get("volumeMounts") or [])
    }
    assert holders == {"metrics"}
    webhook = installed.kubectl_json("get", "deployment", "spo-webhook", "-n", NAMESPACE)
    assert webhook["spec"]["template"]["spec"]["serviceAccountName"] == "spo-webhook"
