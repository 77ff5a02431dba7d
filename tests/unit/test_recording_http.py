"""The recording routes through Flask: the webhook (``create_webhook_app``), the controller hooks
(``create_app``), JSON errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hooks.cluster.app import create_app, create_webhook_app
from tests.helpers.fixed_tables import FixedTables, from_files
from tests.helpers.golden import golden_folder, request_of, response_of

GOLDEN = golden_folder("recording")
RECORDED = GOLDEN / "admission" / "seccomp-container-recorded"
ROUTE = "/mutate-v1-pod-recording"


def webhook_app(tables: FixedTables | None = None) -> Flask:
    return create_webhook_app(
        tables or from_files(recordings=RECORDED / "table.json"), {"TESTING": True}
    )


@pytest.fixture
def client() -> FlaskClient:
    return webhook_app().test_client()


@pytest.fixture
def hooks() -> FlaskClient:
    return create_app({"TESTING": True}).test_client()


def _review() -> dict[str, Any]:
    return request_of(RECORDED)


def test_review_is_answered_with_the_golden_patch(client: FlaskClient) -> None:
    response = client.post(ROUTE, json=_review())
    assert response.status_code == 200
    assert response.get_json() == response_of(RECORDED)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{", "not a JSON object"),
        ("{}", "request: Field required"),
        (json.dumps({**_review(), "apiVersion": "admission.k8s.io/v1beta1"}), "apiVersion"),
        (json.dumps({**_review(), "request": {**_review()["request"], "uid": ""}}), "request.uid"),
        (
            json.dumps({**_review(), "request": {**_review()["request"], "object": "a pod"}}),
            "request.object",
        ),
    ],
)
def test_malformed_review_is_a_json_400(client: FlaskClient, body: str, says: str) -> None:
    response = client.post(ROUTE, data=body, content_type="application/json")
    assert response.status_code == 400
    assert says in response.get_json()["message"]


def test_wrong_content_type_is_a_415(client: FlaskClient) -> None:
    response = client.post(ROUTE, data=json.dumps(_review()), content_type="text/plain")
    assert response.status_code == 415
    assert response.is_json


def test_tables_not_loaded_yet_allow_with_a_warning() -> None:
    app = webhook_app(FixedTables(loaded=False))
    body = app.test_client().post(ROUTE, json=_review()).get_json()
    assert body["response"]["allowed"] is True
    assert "patch" not in body["response"]
    assert body["response"]["warnings"] == [
        "spo: the recording table is not available yet; the pod is not recorded"
    ]


@pytest.mark.parametrize(
    "route", ["/profilerecording/sync", "/profilerecording/finalize", "/profilerecording/customize"]
)
def test_malformed_controller_requests_are_json_400(hooks: FlaskClient, route: str) -> None:
    response = hooks.post(route, json={"parent": "x"})
    assert response.status_code == 400
    assert response.get_json()["code"] == 400


def test_controller_routes_answer_their_golden_requests(hooks: FlaskClient) -> None:
    client = hooks
    case = GOLDEN / "controller" / "recording-lists-active-workloads"
    request = request_of(case)
    expected = response_of(case)
    response = client.post("/profilerecording/sync", json=request)
    assert response.status_code == 200
    got = response.get_json()
    assert got["status"]["activeWorkloads"] == expected["status"]["activeWorkloads"]
    assert got["status"]["conditions"][0]["reason"] == "Recording"
    final = GOLDEN / "controller" / "finalize-waits-for-running-pods"
    answer = client.post("/profilerecording/finalize", json=request_of(final)).get_json()
    assert answer["finalized"] is False
    rules = client.post(
        "/profilerecording/customize", json={"parent": request["parent"]}
    ).get_json()
    assert rules["relatedResources"][0] == {
        "apiVersion": "v1",
        "resource": "pods",
        "namespace": "team-a",
        "labelSelector": {
            "matchLabels": {"uses.spo.x-k8s.io/ProfileRecording-web-recording": "true"}
        },
    }


def test_metrics_count_recording_admission_calls(client: FlaskClient) -> None:
    client.post(ROUTE, json=_review())
    text = client.get("/metrics").get_data(as_text=True)
    assert 'spo_hook_requests_total{code="200",hook="recording-admission"} 1.0' in text
