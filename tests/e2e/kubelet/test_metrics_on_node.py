"""Go's metrics case on the real node, read as the OpenShift documentation says: a bearer token
of the operator namespace's ``default`` ServiceAccount, ``https://metrics.<namespace>/metrics-spod``
through the Service (kube-proxy's rules route the node's own connections to a ClusterIP too), the
node agent in the operator's image answering; no token is a 401, a token of a ServiceAccount
without ``spo-metrics-client`` a 403."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest

from tests.e2e.kubelet.operator_install import OPERATOR_NS, Operator, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]


def scrape(operator: Operator, path: str, token: str | None) -> tuple[int, str]:
    """GET ``path`` of the Service ``metrics`` at its ClusterIP (the certificate checked
    against the cluster's CA, not against the dialled address); the status and the body."""
    plane = operator.plane
    service = plane.kubectl_json("get", "service", "metrics", "-n", OPERATOR_NS)
    context = ssl.create_default_context(cafile=str(operator.webhook_ca))
    context.check_hostname = False  # the ClusterIP is dialled, not the Service's name
    request = urllib.request.Request(f"https://{service['spec']['clusterIP']}:443{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


def token(operator: Operator, service_account: str) -> str:
    return operator.plane.kubectl(
        "create", "token", service_account, "-n", OPERATOR_NS, "--duration=10m"
    ).stdout.strip()


def test_the_documented_curl_reads_the_node_agents_metrics(operator: Operator) -> None:
    reader = token(operator, "default")
    status, body = eventually(
        lambda: (found := scrape(operator, "/metrics-spod", reader))[0] == 200 and found,
        timeout=120,
        what="/metrics-spod through the Service",
    )
    # the install's log-enricher-trace profile, at least, was written on this node
    assert 'security_profiles_operator_seccomp_profile_total{operation="update"}' in body, body
    status, body = scrape(operator, "/metrics", reader)
    assert status == 200 and "controller_runtime_reconcile_total" in body, body[:500]


def test_metrics_refuse_no_token_and_a_token_without_the_right(operator: Operator) -> None:
    plane = operator.plane
    plane.kubectl("create", "serviceaccount", "spo-e2e-unbound", "-n", OPERATOR_NS, check=False)
    unbound = token(operator, "spo-e2e-unbound")
    assert scrape(operator, "/metrics-spod", None)[0] == 401
    assert scrape(operator, "/metrics-spod", unbound)[0] == 403
    assert scrape(operator, "/metrics-spod", "not-a-token")[0] == 401
