"""Least privilege, checked by the real authorizer: what nodesync's ServiceAccount may and may not do,
and that the hooks' ServiceAccount may do nothing at all."""

from __future__ import annotations

import pytest
from controlplane import ControlPlane

pytestmark = pytest.mark.e2e
NAMESPACE = "security-profiles-operator"
NODESYNC = ControlPlane.impersonate_service_account(NAMESPACE, "spo-nodesync")
HOOKS = ControlPlane.impersonate_service_account(NAMESPACE, "spo-hooks")
STATUSES = "securityprofilenodestatuses.security-profiles-operator.x-k8s.io"

ALLOWED = [
    ("list", "configmaps", "--all-namespaces"),
    ("watch", "configmaps", "--all-namespaces"),
    ("create", STATUSES, "-n=team-a"),
    ("update", STATUSES, "-n=team-a"),
    ("patch", STATUSES, "-n=team-a"),
    ("delete", STATUSES, "-n=team-a"),
    ("list", STATUSES, "--all-namespaces"),
    ("update", f"{STATUSES}/status", "-n=team-a"),
    ("create", "events", "-n=team-a"),
]
DENIED = [
    ("get", "secrets", "-n=team-a"),
    ("list", "secrets", "--all-namespaces"),
    ("get", "configmaps", "-n=kube-system"),
    ("create", "configmaps", "-n=team-a"),
    ("update", "configmaps", "-n=team-a"),
    ("delete", "configmaps", "-n=team-a"),
    ("create", "seccompprofiles.security-profiles-operator.x-k8s.io", "-n=team-a"),
    ("update", "seccompprofiles.security-profiles-operator.x-k8s.io", "-n=team-a"),
    ("patch", "seccompprofiles.security-profiles-operator.x-k8s.io/status", "-n=team-a"),
    ("create", "selinuxprofiles.security-profiles-operator.x-k8s.io", "-n=team-a"),
    ("create", "pods", "-n=team-a"),
    ("list", "nodes", ""),
]


def _can(plane: ControlPlane, who: list[str], verb: str, resource: str, scope: str) -> bool:
    args = ["auth", "can-i", verb, resource, *who, *([scope] if scope else [])]
    result = plane.kubectl(*args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.parametrize(("verb", "resource", "scope"), ALLOWED)
def test_nodesync_can_do_what_it_needs(installed: ControlPlane, verb: str, resource: str, scope: str) -> None:
    assert _can(installed, NODESYNC, verb, resource, scope)


@pytest.mark.parametrize(("verb", "resource", "scope"), DENIED)
def test_nodesync_cannot_do_more(installed: ControlPlane, verb: str, resource: str, scope: str) -> None:
    assert not _can(installed, NODESYNC, verb, resource, scope)


def test_nodesync_is_really_refused_a_secret(installed: ControlPlane) -> None:
    installed.kubectl("create", "secret", "generic", "s3cret", "-n", NAMESPACE, "--from-literal=k=v", check=False)
    result = installed.kubectl("get", "secret", "s3cret", "-n", NAMESPACE, *NODESYNC, check=False)
    assert result.returncode != 0
    assert "Forbidden" in result.stderr


@pytest.mark.parametrize("resource", ["configmaps", "pods", "seccompprofiles.security-profiles-operator.x-k8s.io"])
def test_the_hooks_service_account_has_no_rights(installed: ControlPlane, resource: str) -> None:
    assert not _can(installed, HOOKS, "list", resource, "--all-namespaces")
