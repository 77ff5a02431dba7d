"""`spo hooks` really serves: gunicorn with several workers, health, a hook call, shared metrics."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent.parent / "golden" / "seccompprofile"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hooks.cli", "hooks", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1):
                break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"spo hooks exited: {process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("spo hooks did not become ready in 30 s")
    yield base
    process.terminate()
    process.wait(timeout=20)
    if process.stderr:
        process.stderr.close()


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health_endpoints(server: str) -> None:
    with urllib.request.urlopen(f"{server}/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok"}


def test_sync_through_gunicorn_matches_golden(server: str) -> None:
    case = GOLDEN / "base-profile-merged-least-restrictive-wins"
    code, body = _post(f"{server}/seccompprofile/sync", (case / "request.json").read_bytes())
    assert code == 200
    expected = json.loads((case / "response.json").read_text())
    assert body["children"] == expected["children"]


def test_malformed_body_is_400_json(server: str) -> None:
    code, body = _post(f"{server}/seccompprofile/sync", b"{not json")
    assert code == 400
    assert body["code"] == 400


def test_metrics_count_calls_of_every_worker(server: str) -> None:
    for _ in range(6):
        _post(f"{server}/seccompprofile/customize", json.dumps({"parent": {"metadata": {"name": "a"}}}).encode())
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        text = response.read().decode()
    line = next(
        line for line in text.splitlines()
        if line.startswith('spo_hook_requests_total{code="200",hook="seccompprofile-customize"}')
    )
    assert float(line.split()[-1]) == 6.0
