"""``spo hooks-metrics`` as a process: ready only once its certificate can be read, the hooks'
numbers served from their folder, nothing served without a token, and a clean stop on SIGTERM.

The token check itself is nodesync's (tests/unit/test_metrics_auth.py, and against the real
API server tests/e2e/test_metrics_e2e.py); here no reader gets past it, so no API server is
asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hooks.cluster.metrics import folders_exposition
from tests.helpers.hookserver import free_port
from tests.helpers.metrics_reader import get, self_signed, status

ROOT = Path(__file__).resolve().parents[2]


def eventually_status(url: str, wanted: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    seen: object = None
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            seen = status(url)
        except OSError as error:
            seen = error
        if seen == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url}: {seen}, not {wanted}")


def kubeconfig(folder: Path) -> Path:
    """Credentials that are never used: no request gets past the missing token."""
    path = folder / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: unused}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    return path


def write_numbers(folder: Path) -> None:
    """A counter as a hooks worker writes it: prometheus_client's multiprocess file."""
    folder.mkdir()
    count = (
        "from prometheus_client import Counter\n"
        "counter = Counter('spo_hook_requests_total', 'x', ['hook', 'code'])\n"
        "counter.labels(hook='seccompprofile-sync', code='200').inc(3)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)


def test_ready_once_the_certificate_is_there_and_nothing_served_without_a_token(
    tmp_path: Path,
) -> None:
    numbers = tmp_path / "metrics"
    write_numbers(numbers)
    assert b'spo_hook_requests_total{code="200",hook="seccompprofile-sync"} 3.0' in (
        folders_exposition([str(numbers)])
    )
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    port, probes = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["KUBECONFIG"] = str(kubeconfig(tmp_path))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hooks.command.cli",
            "hooks-metrics",
            f"--bind=127.0.0.1:{port}",
            f"--probes=127.0.0.1:{probes}",
            f"--certfile={cert}",
            f"--keyfile={key}",
            f"--metrics-dir={numbers}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        eventually_status(f"http://127.0.0.1:{probes}/healthz", 200, process)
        assert status(f"http://127.0.0.1:{probes}/readyz") == 503  # no certificate yet
        assert status(f"http://127.0.0.1:{probes}/metrics") == 404  # not on the plain port
        made_cert, made_key = self_signed(tmp_path, "made")
        made_cert.rename(cert)
        made_key.rename(key)
        eventually_status(f"http://127.0.0.1:{probes}/readyz", 200, process)
        code, body = get(f"https://127.0.0.1:{port}/metrics", cert)
        assert code == 401, body
        assert get(f"https://127.0.0.1:{port}/healthz", cert)[0] == 401
        # a token too large to be one: refused without asking the API server (which is not
        # there: asking would answer 503)
        assert get(f"https://127.0.0.1:{port}/metrics", cert, "x" * 20_000)[0] == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
