"""The /spod routes: decode, call the pure sync hook, encode; malformed requests get a JSON 4xx."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException

import hooks.cluster.metrics
import hooks.cluster.web.edge
from hooks.cluster.web import spod
from tests.helpers.golden import golden_folder, request_of, response_of

GOLDEN = golden_folder("spod")


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.config["TESTING"] = True
    app.register_blueprint(spod.blueprint)
    app.extensions["spo_metrics"] = hooks.cluster.metrics.HookMetrics()
    app.register_error_handler(HTTPException, hooks.cluster.web.edge.json_error)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.mark.parametrize(
    "case", ["running-every-pod-available", "invalid-toleration-operator", "selinux-enabled"]
)
def test_sync_answers_the_golden_response_but_the_clock(client: FlaskClient, case: str) -> None:
    request = request_of(GOLDEN / case)
    expected = response_of(GOLDEN / case)
    response = client.post("/spod/sync", json=request)
    assert response.status_code == 200
    got = response.get_json()
    for condition in got["status"]["conditions"] + expected["status"]["conditions"]:
        condition.pop("lastTransitionTime")
    assert got == expected


@pytest.mark.parametrize(
    ("body", "content_type", "code", "says"),
    [
        ("{", "application/json", 400, "not a JSON object"),
        ("[]", "application/json", 400, "not a JSON object"),
        ("{}", "application/json", 400, "parent: Field required"),
        ('{"parent": {}, "children": []}', "application/json", 400, "children"),
        ('{"parent": {}}', "text/plain", 415, "application/json"),
    ],
)
def test_malformed_requests_get_a_json_4xx(
    client: FlaskClient, body: str, content_type: str, code: int, says: str
) -> None:
    response = client.post("/spod/sync", data=body, content_type=content_type)
    assert response.status_code == code
    assert response.is_json
    assert says in response.get_json()["message"]


def test_there_is_no_customize_or_finalize_route(client: FlaskClient) -> None:
    assert client.post("/spod/customize", json={"parent": {}}).status_code == 404
    assert client.post("/spod/finalize", json={"parent": {}}).status_code == 404


def test_calls_are_counted_in_the_metrics(app: Flask, client: FlaskClient) -> None:
    request = request_of(GOLDEN / "creating-no-daemonset-yet")
    client.post("/spod/sync", json=request)
    client.post("/spod/sync", data="{", content_type="application/json")
    metrics = app.extensions["spo_metrics"]
    assert metrics.requests.labels(hook="spod-sync", code="200")._value.get() == 1
    assert metrics.requests.labels(hook="spod-sync", code="400")._value.get() == 1
