"""The Flask layer: malformed requests get a 4xx JSON answer, never a 500; metrics count calls."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from bench.baselines import with_baselines
from hooks.cluster.app import create_app
from tests.helpers.golden import golden_folder, request_of, response_of

GOLDEN = golden_folder("seccompprofile")
PARENT = {
    "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
    "kind": "SeccompProfile",
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"defaultAction": "SCMP_ACT_ERRNO"},
}


@pytest.fixture
def client() -> FlaskClient:
    return create_app({"TESTING": True}).test_client()


@pytest.mark.parametrize("hook", ["sync", "finalize", "customize"])
@pytest.mark.parametrize(
    ("body", "content_type", "code", "says"),
    [
        ("{", "application/json", 400, "not a JSON object"),
        ("[1, 2]", "application/json", 400, "not a JSON object"),
        ('"text"', "application/json", 400, "not a JSON object"),
        ("{}", "application/json", 400, "parent: Field required"),
        ('{"parent": "p"}', "application/json", 400, "parent"),
        (json.dumps({"parent": PARENT}), "text/plain", 415, "application/json"),
        (json.dumps({"parent": PARENT}), "", 415, "application/json"),
    ],
)
def test_malformed_requests_get_a_json_4xx(
    client: FlaskClient, hook: str, body: str, content_type: str, code: int, says: str
) -> None:
    response = client.post(f"/seccompprofile/{hook}", data=body, content_type=content_type)
    assert response.status_code == code
    assert response.is_json
    assert says in response.get_json()["message"]


@pytest.mark.parametrize("hook", ["sync", "finalize"])
def test_field_of_the_wrong_type_is_a_400(client: FlaskClient, hook: str) -> None:
    response = client.post(
        f"/seccompprofile/{hook}", json={"parent": PARENT, "finalizing": "maybe"}
    )
    assert response.status_code == 400
    assert "finalizing" in response.get_json()["message"]


def test_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    response = client.get("/seccompprofile/sync")
    assert response.status_code == 405
    assert response.get_json()["code"] == 405


def test_unknown_route_is_a_json_404(client: FlaskClient) -> None:
    response = client.post("/nope", json={})
    assert response.status_code == 404
    assert response.is_json


def test_sync_over_http_answers_like_the_function(client: FlaskClient) -> None:
    request = request_of(GOLDEN / "installed-on-every-node")
    response = client.post("/seccompprofile/sync", json=request)
    assert response.status_code == 200
    body = response.get_json()
    expected = response_of(GOLDEN / "installed-on-every-node")
    assert body["children"] == expected["children"]
    assert body["status"]["status"] == "Installed"


def test_customize_asks_for_node_statuses_and_pods(client: FlaskClient) -> None:
    response = client.post("/seccompprofile/customize", json={"parent": PARENT})
    assert response.status_code == 200
    rules = response.get_json()["relatedResources"]
    assert [rule["resource"] for rule in rules] == [
        "securityprofilenodestatuses",
        "pods",
        "securityprofilesoperatordaemons",
    ]
    assert all(rule["namespace"] == "ns" for rule in rules[:2])
    assert rules[2] == {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
        "resource": "securityprofilesoperatordaemons",
        "namespace": "security-profiles-operator",
        "names": ["spod"],
    }
    assert rules[0]["labelSelector"] == {
        "matchLabels": {"spo.x-k8s.io/profile-id": "SeccompProfile-p"}
    }


def test_customize_asks_for_the_namespace_profiles_only_with_a_base(client: FlaskClient) -> None:
    parent = {**PARENT, "spec": {**PARENT["spec"], "baseProfileName": "runc-v1.1.5"}}  # type: ignore[dict-item]
    rules = client.post("/seccompprofile/customize", json={"parent": parent}).get_json()[
        "relatedResources"
    ]
    assert [rule["resource"] for rule in rules][:3] == [
        "securityprofilenodestatuses",
        "pods",
        "seccompprofiles",
    ]
    assert rules[2] == {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "resource": "seccompprofiles",
        "namespace": "ns",
    }


def test_health_and_metrics(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/seccompprofile/sync", json={"parent": PARENT})
    client.post("/seccompprofile/sync", data="{", content_type="application/json")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'spo_hook_requests_total{code="200",hook="seccompprofile-sync"} 1.0' in text
    assert 'spo_hook_requests_total{code="400",hook="seccompprofile-sync"} 1.0' in text
    assert 'spo_hook_request_duration_seconds_count{hook="seccompprofile-sync"} 2.0' in text


def test_echo_route_only_when_asked(client: FlaskClient) -> None:
    assert client.post("/echo", json={"a": 1}).status_code == 404
    echo = with_baselines(create_app()).test_client()
    assert echo.post("/echo", json={"a": 1}).get_json() == {"a": 1}
