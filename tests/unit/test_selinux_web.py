"""The SELinux blueprint: routes of both controllers, 4xx on malformed requests, metrics."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException

from hooks.cluster.metrics import HookMetrics
from hooks.cluster.web import edge, selinuxprofile
from hooks.cluster.web.jsoncodec import OrjsonProvider
from tests.helpers.golden import GOLDEN, request_of, response_of

GROUP = "security-profiles-operator.x-k8s.io"
PARENTS = {
    "selinuxprofile": {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "SelinuxProfile",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"allow": {"http_port_t": {"tcp_socket": ["name_bind"]}}},
    },
    "rawselinuxprofile": {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "RawSelinuxProfile",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"policy": "(blockinherit container)\n"},
    },
}


@pytest.fixture
def app() -> Flask:
    Flask.json_provider_class = OrjsonProvider
    app = Flask(__name__)
    app.config.update(TESTING=True)
    app.extensions["spo_metrics"] = HookMetrics()
    app.register_blueprint(selinuxprofile.blueprint)
    app.register_error_handler(HTTPException, edge.json_error)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.mark.parametrize("prefix", list(PARENTS))
def test_sync_answers_the_golden_response(client: FlaskClient, prefix: str) -> None:
    case = GOLDEN / prefix / "installed-on-every-node"
    response = client.post(f"/{prefix}/sync", json=request_of(case))
    assert response.status_code == 200
    body = response.get_json()
    expected = response_of(case)
    assert body["children"] == expected["children"]
    assert body["status"]["status"] == "Installed"


@pytest.mark.parametrize("prefix", list(PARENTS))
def test_finalize_route_finalizes(client: FlaskClient, prefix: str) -> None:
    case = GOLDEN / prefix / "finalize-done-when-no-node-has-it"
    response = client.post(f"/{prefix}/finalize", json=request_of(case))
    assert response.status_code == 200
    assert response.get_json()["finalized"] is True


def test_each_route_uses_its_own_kind(client: FlaskClient) -> None:
    """The raw route reads the node statuses and ConfigMap of a RawSelinuxProfile, not of a
    SelinuxProfile."""
    body = {"parent": PARENTS["rawselinuxprofile"], "related": {}}
    raw = client.post("/rawselinuxprofile/customize", json=body).get_json()
    selectors = [rule.get("labelSelector") for rule in raw["relatedResources"]]
    assert {"matchLabels": {"spo.x-k8s.io/profile-id": "RawSelinuxProfile-web"}} in selectors
    assert "selinuxprofiles" not in [rule["resource"] for rule in raw["relatedResources"]]
    plain = client.post(
        "/selinuxprofile/customize", json={"parent": PARENTS["selinuxprofile"]}
    ).get_json()
    assert {"matchLabels": {"spo.x-k8s.io/profile-id": "SelinuxProfile-web"}} in [
        rule.get("labelSelector") for rule in plain["relatedResources"]
    ]
    daemon_rules = [
        rule
        for rule in plain["relatedResources"]
        if rule["resource"] == "securityprofilesoperatordaemons"
    ]
    assert daemon_rules == [
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "resource": "securityprofilesoperatordaemons",
            "namespace": "security-profiles-operator",
            "names": ["spod"],
        }
    ]
    assert {
        "apiVersion": f"{GROUP}/v1alpha2",
        "resource": "selinuxprofiles",
        "namespace": "team-a",
    } in plain["relatedResources"]


def test_a_rejected_profile_is_a_200_with_an_error_status(client: FlaskClient) -> None:
    parent = {
        **PARENTS["rawselinuxprofile"],
        "spec": {"policy": "(blockinherit container))(sid kernel)("},
    }
    response = client.post("/rawselinuxprofile/sync", json={"parent": parent})
    assert response.status_code == 200
    assert response.get_json()["status"]["status"] == "Error"
    assert response.get_json()["children"] == []


@pytest.mark.parametrize("prefix", list(PARENTS))
@pytest.mark.parametrize("hook", ["customize", "sync", "finalize"])
@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ("{", "application/json", 400),
        ("{}", "application/json", 400),
        ('{"parent": 1}', "text/plain", 415),
    ],
)
def test_malformed_requests_get_a_json_4xx(
    client: FlaskClient, prefix: str, hook: str, body: str, content_type: str, code: int
) -> None:
    response = client.post(f"/{prefix}/{hook}", data=body, content_type=content_type)
    assert response.status_code == code
    assert response.get_json()["code"] == code


def test_calls_are_counted_per_hook(app: Flask, client: FlaskClient) -> None:
    client.post("/rawselinuxprofile/sync", json={"parent": PARENTS["rawselinuxprofile"]})
    client.post("/rawselinuxprofile/sync", data="{", content_type="application/json")
    exposition = app.extensions["spo_metrics"].exposition().decode()
    assert 'spo_hook_requests_total{code="200",hook="rawselinuxprofile-sync"} 1.0' in exposition
    assert 'spo_hook_requests_total{code="400",hook="rawselinuxprofile-sync"} 1.0' in exposition


def test_wrong_method_is_a_405(client: FlaskClient) -> None:
    assert client.get("/selinuxprofile/sync").status_code == 405
