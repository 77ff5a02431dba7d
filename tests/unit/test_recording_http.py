"""The recording routes through Flask: the webhook with its table file, the controller hooks,
JSON errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hooks.cluster.app import create_app
from hooks.cluster.binding import loading as binding_loading
from hooks.cluster.recording import loading, table
from hooks.cluster.web import recording
from tests.helpers.golden import golden_folder, request_of, response_of

GOLDEN = golden_folder("recording")
RECORDED = GOLDEN / "admission" / "seccomp-container-recorded"
ROUTE = "/mutate-v1-pod-recording"


def recording_app(config: dict[str, Any]) -> Flask:
    """The hook app with the recording blueprint, registered here until hooks/app.py does it.

    Until then hooks/web/binding.py still has its placeholder for the same path,
    and the first rule registered for a path wins: that rule is pointed here.
    """
    app = create_app(config)
    if recording.blueprint.name not in app.blueprints:
        app.register_blueprint(recording.blueprint)
    for rule in app.url_map.iter_rules():
        if rule.rule == ROUTE:
            app.view_functions[rule.endpoint] = app.view_functions["recording.mutate_pod_recording"]
    return app


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "recordings.json"
    path.write_text((RECORDED / "table.json").read_text())
    return path


@pytest.fixture
def client(table_file: Path) -> FlaskClient:
    return recording_app({"TESTING": True, "SPO_RECORDINGS_FILE": str(table_file)}).test_client()


def _review() -> dict[str, Any]:
    return request_of(RECORDED)


def test_review_is_answered_with_the_golden_patch(client: FlaskClient) -> None:
    response = client.post(ROUTE, json=_review())
    assert response.status_code == 200
    assert response.get_json() == response_of(RECORDED)


def test_table_is_read_next_to_the_binding_table_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(loading.ENV, raising=False)
    monkeypatch.delenv(binding_loading.ENV, raising=False)
    (tmp_path / "recordings.json").write_text((RECORDED / "table.json").read_text())
    app = recording_app({"TESTING": True, "SPO_BINDINGS_FILE": str(tmp_path / "bindings.json")})
    assert app.extensions[recording.TABLE_EXTENSION].path == tmp_path / "recordings.json"
    assert "patch" in app.test_client().post(ROUTE, json=_review()).get_json()["response"]
    assert loading.default_path(None) == Path("/etc/spo/bindings/recordings.json")


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


def test_missing_table_file_allows_with_a_warning(tmp_path: Path) -> None:
    app = recording_app({"TESTING": True, "SPO_RECORDINGS_FILE": str(tmp_path / "absent.json")})
    body = app.test_client().post(ROUTE, json=_review()).get_json()
    assert body["response"]["allowed"] is True
    assert "patch" not in body["response"]
    assert body["response"]["warnings"] == [
        "spo: the recording table is not available yet; the pod is not recorded"
    ]


def test_table_file_is_reloaded_when_replaced_and_a_broken_one_is_ignored(
    client: FlaskClient, table_file: Path
) -> None:
    assert "patch" in client.post(ROUTE, json=_review()).get_json()["response"]
    current = table.decode(table_file.read_text())
    staged = table_file.with_name("next.json")
    staged.write_text(table.encode(table.RecordingTable({}, current.logging)))
    os.replace(staged, table_file)  # what the kubelet's symlink swap amounts to: a new inode
    emptied = client.post(ROUTE, json=_review()).get_json()
    assert "patch" not in emptied["response"]
    table_file.write_text('{"version": 1, "namespaces": [')
    assert client.post(ROUTE, json=_review()).get_json() == emptied
    table_file.unlink()
    assert client.post(ROUTE, json=_review()).get_json() == emptied


def test_loader_parses_once_per_change(table_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = table.decode

    def counting(text: str | bytes) -> table.RecordingTable:
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
    "route", ["/profilerecording/sync", "/profilerecording/finalize", "/profilerecording/customize"]
)
def test_malformed_controller_requests_are_json_400(client: FlaskClient, route: str) -> None:
    response = client.post(route, json={"parent": "x"})
    assert response.status_code == 400
    assert response.get_json()["code"] == 400


def test_controller_routes_answer_their_golden_requests(client: FlaskClient) -> None:
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
