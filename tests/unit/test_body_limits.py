"""The body limit on every route of the hook service: 413 with a JSON message before the body
is read (declared too large) or as soon as it is (streamed past the limit, or more JSON values
than the cap); just under the limits, the request is served."""

from __future__ import annotations

import io
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hooks.cluster.app import create_app, create_webhook_app
from hooks.cluster.web import limits
from tests.helpers.fixed_tables import FixedTables

PARENT = {
    "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
    "kind": "SeccompProfile",
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"defaultAction": "SCMP_ACT_ERRNO"},
}


@pytest.fixture(scope="module")
def app() -> Flask:
    return create_app({"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _routes(app: Flask) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        method = "POST" if "POST" in (rule.methods or ()) else "GET"
        found.append((method, rule.rule))
    return sorted(found)


@pytest.mark.parametrize("which", ["hooks", "webhook"])
def test_every_route_refuses_a_declared_body_past_the_limit(app: Flask, which: str) -> None:
    if which == "webhook":
        app = create_webhook_app(FixedTables(), {"TESTING": True})
        assert ("POST", "/mutate-v1-pod-binding") in _routes(app)
    client = app.test_client()
    routes = _routes(app)
    assert ("GET", "/healthz") in routes
    for method, route in routes:
        response = client.open(
            route,
            method=method,
            data=b"x" * 16,
            content_type="application/json",
            environ_overrides={"CONTENT_LENGTH": str(limits.MAX_BODY_BYTES + 1)},
        )
        assert response.status_code == 413, route
        assert f"more than {limits.MAX_BODY_BYTES}" in response.get_json()["message"]


def test_a_streamed_body_past_the_limit_is_a_413(client: FlaskClient) -> None:
    body = b'{"parent": {}, "x": "' + b"y" * (limits.MAX_BODY_BYTES + 1) + b'"}'
    response = client.post(
        "/seccompprofile/sync",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},  # no Content-Length: read to the end
    )
    assert response.status_code == 413
    assert response.is_json


def test_too_many_json_values_is_a_413(client: FlaskClient) -> None:
    body = json.dumps({"parent": PARENT, "controller": {"x": [0] * limits.MAX_JSON_VALUES}})
    response = client.post("/seccompprofile/sync", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "JSON values" in response.get_json()["message"]


def test_just_under_both_limits_is_served(client: FlaskClient) -> None:
    values = json.dumps(
        {"parent": PARENT, "controller": {"x": [0] * (limits.MAX_JSON_VALUES - 100)}}
    )
    assert limits.count_values(values.encode()) <= limits.MAX_JSON_VALUES
    assert (
        client.post(
            "/seccompprofile/sync", data=values, content_type="application/json"
        ).status_code
        == 200
    )
    big = json.dumps({"parent": PARENT, "controller": {"x": "y" * (limits.MAX_BODY_BYTES - 1000)}})
    assert len(big) <= limits.MAX_BODY_BYTES
    assert (
        client.post("/seccompprofile/sync", data=big, content_type="application/json").status_code
        == 200
    )


def test_count_values_bounds_the_values_from_above() -> None:
    for text in ['{"a": [1, 2, {"b": []}]}', "[]", "1", '"a,b"', "[{}, {}, [[]]]"]:
        parsed = json.loads(text)

        def count(value: object) -> int:
            if isinstance(value, dict):
                return 1 + sum(count(v) for v in value.values())
            if isinstance(value, list):
                return 1 + sum(count(v) for v in value)
            return 1

        assert count(parsed) <= limits.count_values(text.encode())
