"""The binding routes through Flask: the webhook (``create_webhook_app``) and the controller and
decorator hooks (``create_app``), JSON errors for malformed reviews."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bench.baselines import with_baselines
from hooks.cluster.app import create_app, create_webhook_app
from tests.helpers.fixed_tables import FixedTables, from_files
from tests.helpers.golden import golden_folder, request_of, response_of

GOLDEN = golden_folder("binding/admission")
BOUND = GOLDEN / "seccomp-container-without-security-context-bound"


def webhook_app(tables: FixedTables | None = None) -> Flask:
    return create_webhook_app(tables or from_files(BOUND / "table.json"), {"TESTING": True})


@pytest.fixture
def client() -> FlaskClient:
    return webhook_app().test_client()


@pytest.fixture
def hooks() -> FlaskClient:
    return create_app({"TESTING": True}).test_client()


def _review() -> dict[str, Any]:
    return request_of(BOUND)


def _patch(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(json.loads(base64.b64decode(body["response"]["patch"])))


def test_review_is_answered_with_the_golden_patch(client: FlaskClient) -> None:
    response = client.post("/mutate-v1-pod-binding", json=_review())
    assert response.status_code == 200
    assert response.get_json() == response_of(BOUND)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{", "not a JSON object"),
        ("[]", "not a JSON object"),
        ("{}", "request: Field required"),
        (json.dumps({**_review(), "apiVersion": "admission.k8s.io/v1beta1"}), "apiVersion"),
        (json.dumps({**_review(), "kind": "Pod"}), "kind"),
        (json.dumps({**_review(), "request": {**_review()["request"], "uid": ""}}), "request.uid"),
        (
            json.dumps(
                {
                    **_review(),
                    "request": {k: v for k, v in _review()["request"].items() if k != "uid"},
                }
            ),
            "request.uid",
        ),
        (
            json.dumps(
                {
                    **_review(),
                    "request": {k: v for k, v in _review()["request"].items() if k != "operation"},
                }
            ),
            "request.operation",
        ),
        (
            json.dumps({**_review(), "request": {**_review()["request"], "object": "a pod"}}),
            "request.object",
        ),
        (
            json.dumps({**_review(), "request": {**_review()["request"], "resource": "pods"}}),
            "request.resource",
        ),
    ],
)
def test_malformed_review_is_a_json_400(client: FlaskClient, body: str, says: str) -> None:
    response = client.post("/mutate-v1-pod-binding", data=body, content_type="application/json")
    assert response.status_code == 400
    assert says in response.get_json()["message"]


def test_wrong_content_type_is_a_415(client: FlaskClient) -> None:
    response = client.post(
        "/mutate-v1-pod-binding", data=json.dumps(_review()), content_type="text/plain"
    )
    assert response.status_code == 415
    assert response.is_json


def test_tables_not_loaded_yet_allow_with_a_warning_and_are_not_ready() -> None:
    app = webhook_app(FixedTables(loaded=False))
    body = app.test_client().post("/mutate-v1-pod-binding", json=_review()).get_json()
    assert body["response"]["allowed"] is True
    assert "patch" not in body["response"]
    assert body["response"]["warnings"] == [
        "spo: the binding table is not available yet; no profile binding was applied"
    ]
    assert app.test_client().get("/readyz").status_code == 503
    assert webhook_app().test_client().get("/readyz").status_code == 200


def test_the_hooks_do_not_serve_admission(hooks: FlaskClient) -> None:
    assert hooks.post("/mutate-v1-pod-binding", json=_review()).status_code == 404
    assert hooks.post("/mutate-v1-pod-recording", json=_review()).status_code == 404


@pytest.mark.parametrize(
    ("route", "body", "code"),
    [
        ("/profilebinding/sync", {"parent": "x"}, 400),
        ("/profilebinding/finalize", {}, 400),
        ("/profilebinding/customize", {"parent": 3}, 400),
        ("/namespace/sync", {"parent": "x"}, 400),  # v2 names the target "parent"
        ("/namespace/sync", {"controller": {}, "children": {}}, 400),
        ("/namespace/customize", {}, 400),
    ],
)
def test_malformed_hook_requests_are_json_4xx(
    hooks: FlaskClient, route: str, body: dict[str, Any], code: int
) -> None:
    response = hooks.post(route, json=body)
    assert response.status_code == code
    assert response.get_json()["code"] == code


def test_hook_routes_answer_their_golden_requests(hooks: FlaskClient) -> None:
    ns_case = golden_folder("namespace") / "webhook-options-replace-defaults"
    response = hooks.post("/namespace/sync", json=request_of(ns_case))
    assert response.get_json() == response_of(ns_case)
    pb_case = golden_folder("binding/controller") / "installed-lists-active-workloads"
    response = hooks.post("/profilebinding/sync", json=request_of(pb_case))
    assert response.status_code == 200
    assert (
        response.get_json()["status"]["activeWorkloads"]
        == response_of(pb_case)["status"]["activeWorkloads"]
    )


def test_metrics_count_admission_calls(client: FlaskClient) -> None:
    client.post("/mutate-v1-pod-binding", json=_review())
    text = client.get("/metrics").get_data(as_text=True)
    assert 'spo_hook_requests_total{code="200",hook="binding-admission"} 1.0' in text


def test_trivial_admission_route_only_with_the_echo_flag() -> None:
    plain = webhook_app().test_client()
    assert plain.post("/admit-allow", json=_review()).status_code == 404
    echo = with_baselines(webhook_app()).test_client()
    body = echo.post("/admit-allow", json=_review()).get_json()
    assert body["response"] == {"uid": _review()["request"]["uid"], "allowed": True}
