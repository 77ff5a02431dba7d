"""`spo hooks` really serves: gunicorn with several workers, health, a hook call, shared metrics."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.helpers.golden import golden_folder, response_of
from tests.helpers.hookserver import post

GOLDEN = golden_folder("seccompprofile")


@pytest.fixture(scope="module")
def server(hook_server: str) -> str:
    return hook_server


def test_health_endpoints(server: str) -> None:
    with urllib.request.urlopen(f"{server}/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok"}


def test_sync_through_gunicorn_matches_golden(server: str) -> None:
    case = GOLDEN / "base-profile-merged-least-restrictive-wins"
    code, body = post(f"{server}/seccompprofile/sync", (case / "request.json").read_bytes())
    assert code == 200
    expected = response_of(case)
    assert body["children"] == expected["children"]


def test_malformed_body_is_400_json(server: str) -> None:
    code, body = post(f"{server}/seccompprofile/sync", b"{not json")
    assert code == 400
    assert body["code"] == 400


def _customize_count(server: str) -> float:
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = 'spo_hook_requests_total{code="200",hook="seccompprofile-customize"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_metrics_count_calls_of_every_worker(server: str) -> None:
    before = _customize_count(server)
    for _ in range(6):
        post(
            f"{server}/seccompprofile/customize",
            json.dumps({"parent": {"metadata": {"name": "a"}}}).encode(),
        )
    assert _customize_count(server) - before == 6.0
