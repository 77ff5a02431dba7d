"""The binding routes through Flask: JSON errors for malformed reviews, the table file and its
reloads."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bench.baselines import with_baselines
from hooks.cluster.app import create_app
from hooks.cluster.binding import loading, table
from hooks.cluster.web import binding
from tests.helpers.golden import golden_folder, request_of, response_of

GOLDEN = golden_folder("binding/admission")
BOUND = GOLDEN / "seccomp-container-without-security-context-bound"


def binding_app(config: dict[str, Any]) -> Flask:
    """The hook app with the binding blueprint (registered here until hooks/app.py does it)."""
    app = create_app(config)
    if binding.blueprint.name not in app.blueprints:
        app.register_blueprint(binding.blueprint)
    return app


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "bindings.json"
    path.write_text((BOUND / "table.json").read_text())
    return path


@pytest.fixture
def client(table_file: Path) -> FlaskClient:
    return binding_app({"TESTING": True, "SPO_BINDINGS_FILE": str(table_file)}).test_client()


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


def test_missing_table_file_allows_with_a_warning(tmp_path: Path) -> None:
    app = binding_app({"TESTING": True, "SPO_BINDINGS_FILE": str(tmp_path / "absent.json")})
    body = app.test_client().post("/mutate-v1-pod-binding", json=_review()).get_json()
    assert body["response"]["allowed"] is True
    assert "patch" not in body["response"]
    assert body["response"]["warnings"] == [
        "spo: the binding table is not available yet; no profile binding was applied"
    ]


def test_table_file_is_reloaded_when_replaced(client: FlaskClient, table_file: Path) -> None:
    first = _patch(client.post("/mutate-v1-pod-binding", json=_review()).get_json())
    assert (
        first[0]["value"]["seccompProfile"]["localhostProfile"]
        == "operator/team-a/profile-complain-unsafe.json"
    )
    other = table.decode(table_file.read_text())
    entry = other.of("team-a")["nginx:1.27"][0]
    replaced = table.BindingTable(
        {
            "team-a": {
                "nginx:1.27": (
                    table.Entry(
                        entry.binding, entry.kind, "p2", "Installed", "operator/team-a/p2.json"
                    ),
                )
            }
        }
    )
    staged = table_file.with_name("next.json")
    staged.write_text(table.encode(replaced))
    os.replace(staged, table_file)  # what the kubelet's symlink swap amounts to: a new inode
    second = _patch(client.post("/mutate-v1-pod-binding", json=_review()).get_json())
    assert second[0]["value"]["seccompProfile"]["localhostProfile"] == "operator/team-a/p2.json"


def test_a_broken_update_keeps_the_last_good_table(client: FlaskClient, table_file: Path) -> None:
    good = client.post("/mutate-v1-pod-binding", json=_review()).get_json()
    table_file.write_text('{"version": 1, "namespaces": [')
    again = client.post("/mutate-v1-pod-binding", json=_review()).get_json()
    assert again == good
    table_file.unlink()
    assert client.post("/mutate-v1-pod-binding", json=_review()).get_json() == good


def test_loader_parses_once_per_change(table_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = table.decode

    def counting(text: str | bytes) -> table.BindingTable:
        calls.append(1)
        return real(text)

    monkeypatch.setattr(loading, "decode", counting)
    source = loading.TableFile(table_file)
    for _ in range(5):
        assert source.current().loaded
    assert len(calls) == 1
    table_file.write_text(table_file.read_text() + " ")
    assert source.current().table.count() == 1
    assert len(calls) == 2


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
    client: FlaskClient, route: str, body: dict[str, Any], code: int
) -> None:
    response = client.post(route, json=body)
    assert response.status_code == code
    assert response.get_json()["code"] == code


def test_hook_routes_answer_their_golden_requests(client: FlaskClient) -> None:
    ns_case = golden_folder("namespace") / "bindings-resolved-across-namespaces"
    response = client.post("/namespace/sync", json=request_of(ns_case))
    assert response.get_json() == response_of(ns_case)
    pb_case = golden_folder("binding/controller") / "installed-lists-active-workloads"
    response = client.post("/profilebinding/sync", json=request_of(pb_case))
    assert response.status_code == 200
    assert (
        response.get_json()["status"]["activeWorkloads"]
        == response_of(pb_case)["status"]["activeWorkloads"]
    )


def test_metrics_count_admission_calls(client: FlaskClient) -> None:
    client.post("/mutate-v1-pod-binding", json=_review())
    text = client.get("/metrics").get_data(as_text=True)
    assert 'spo_hook_requests_total{code="200",hook="binding-admission"} 1.0' in text


def test_trivial_admission_route_only_with_the_echo_flag(table_file: Path) -> None:
    plain = binding_app({"TESTING": True, "SPO_BINDINGS_FILE": str(table_file)}).test_client()
    assert plain.post("/admit-allow", json=_review()).status_code == 404
    echo = with_baselines(
        binding_app({"TESTING": True, "SPO_BINDINGS_FILE": str(table_file)})
    ).test_client()
    body = echo.post("/admit-allow", json=_review()).get_json()
    assert body["response"] == {"uid": _review()["request"]["uid"], "allowed": True}
