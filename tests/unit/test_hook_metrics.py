"""The hook service's metrics: the controllers' syncs, errors and latency
(``controller_runtime_reconcile_*``), and ``/metrics`` behind a guard while the hooks' own
routes stay open to Metacontroller and the API server."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from hooks.cluster.app import create_app
from hooks.cluster.metrics import controller_of
from hooks.cluster.web import health
from hooks.command import cli
from tests.helpers.golden import golden_folder

SYNC = golden_folder("seccompprofile") / "base-profile-merged-least-restrictive-wins"


def guard(authorization: str | None, path: str) -> tuple[int, str]:
    if authorization is None:
        return 401, "Unauthorized"
    if authorization != "Bearer reader":
        return 403, "Forbidden"
    return 200, "OK"


@pytest.fixture
def app() -> Flask:
    made = create_app()
    made.extensions[health.GUARD] = guard
    return made


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def sample(client: FlaskClient, name: str, **labels: str) -> float:
    response = client.get("/metrics", headers={"Authorization": "Bearer reader"})
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def test_metrics_are_401_without_a_token_403_without_the_right(client: FlaskClient) -> None:
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": "Bearer other"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer reader"}).status_code == 200


def test_the_hooks_stay_open_to_their_callers(client: FlaskClient) -> None:
    """No Authorization header: Metacontroller calls the sync hooks as it always did."""
    answer = client.post("/seccompprofile/sync", data=(SYNC / "request.json").read_bytes(),
                         content_type="application/json")  # fmt: skip
    assert answer.status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_every_sync_and_finalize_is_one_reconcile_of_its_controller(client: FlaskClient) -> None:
    body = (SYNC / "request.json").read_bytes()
    for path in ("/seccompprofile/sync", "/seccompprofile/sync", "/seccompprofile/finalize"):
        assert client.post(path, data=body, content_type="application/json").status_code == 200
    broken = client.post("/seccompprofile/sync", data=b"{", content_type="application/json")
    assert broken.status_code == 400
    customize = json.dumps({"parent": {"metadata": {"name": "a"}}})
    client.post("/seccompprofile/customize", data=customize, content_type="application/json")
    total = "controller_runtime_reconcile_total"
    assert sample(client, total, controller="seccompprofile", result="success") == 3
    assert sample(client, total, controller="seccompprofile", result="error") == 1
    assert sample(client, "controller_runtime_reconcile_errors_total") == 1
    count = "controller_runtime_reconcile_time_seconds_count"
    assert sample(client, count, controller="seccompprofile") == 4  # customize is no reconcile
    # the per-hook numbers stay as they were
    hook = "spo_hook_requests_total"
    assert sample(client, hook, hook="seccompprofile-customize", code="200") == 1


@pytest.mark.parametrize(
    ("hook", "controller"),
    [
        ("seccompprofile-sync", "seccompprofile"),
        ("rawselinuxprofile-finalize", "rawselinuxprofile"),
        ("namespace-sync", "namespace"),
        ("spod-sync", "spod"),
        ("seccompprofile-customize", None),
        ("binding-admission", None),
        ("sync", None),
    ],
)
def test_controller_of(hook: str, controller: str | None) -> None:
    assert controller_of(hook) == controller


def test_off_answers_404_and_none_leaves_metrics_open() -> None:
    off = cli._hooks_app("off", [], 30.0).test_client()
    assert off.get("/metrics", headers={"Authorization": "Bearer reader"}).status_code == 404
    assert off.get("/healthz").status_code == 200
    assert cli._hooks_app("none", [], 30.0).test_client().get("/metrics").status_code == 200


def test_the_command_takes_the_metrics_options() -> None:
    args = cli.parser().parse_args(
        ["hooks", "--metrics-auth=token", "--metrics-dir=/tmp/a", "--metrics-dir=/tmp/b"]
    )
    assert (args.metrics_auth, args.metrics_dir) == ("token", ["/tmp/a", "/tmp/b"])
    assert cli.parser().parse_args(["hooks"]).metrics_auth == "none"
