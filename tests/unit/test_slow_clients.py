"""Slow clients cannot starve the real `spo hooks`: with 16 connections of each kind left
hanging (headers then one byte of the body; half a TLS ClientHello on the webhook's HTTPS port;
a TLS connection that sent its headers then one byte), `/healthz`, a sync hook and an
admission request still answer within 1 s; and the hanging connections are closed in time.

A deadline, not a benchmark: each call must be answered within 1 s, and gets three tries so
that a busy machine does not fail it (the old thread workers never answered at all while
eight such connections were open).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks.cluster import serving as hook_serving
from hooks.cluster.binding import table as binding_table
from tests.helpers.fake_apiserver import fake_apiserver, objects_of
from tests.helpers.hookserver import free_port, serving
from tests.helpers.unavailable import unavailable

SLOW = 16
DEADLINE = 1.0
TRIES = 3
GOLDEN = Path(__file__).parent.parent / "golden"
ADMISSION = GOLDEN / "binding" / "admission" / "seccomp-container-without-security-context-bound"
SYNC = GOLDEN / "seccompprofile" / "installed-on-every-node" / "request.json"


def _cert(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        unavailable("the 'openssl' command is not on PATH")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, ssl.SSLContext]]:
    """The hooks over HTTP and the webhooks over HTTPS, as the Deployments run them (the webhook's
    tables listed from a stand-in API server)."""
    folder = tmp_path_factory.mktemp("slow")
    cert, key = _cert(folder)
    table = binding_table.decode((ADMISSION / "table.json").read_bytes())
    context = ssl.create_default_context(cafile=str(cert))
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    http_port, https_port = free_port(), free_port()
    spo = [sys.executable, "-m", "hooks.command.cli"]
    http = f"http://127.0.0.1:{http_port}"
    https = f"https://127.0.0.1:{https_port}"
    with (
        fake_apiserver(objects_of(table)) as apiserver,
        serving(
            [*spo, "hooks", "--workers", "2", "--bind", f"127.0.0.1:{http_port}"], http, env=env
        ),
        serving(
            [
                *spo,
                "webhook",
                "--kubeconfig",
                str(apiserver.kubeconfig(folder / "kubeconfig")),
                "--bind",
                f"127.0.0.1:{https_port}",
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
            ],
            https,
            env=env,
            context=context,
        ),  # fmt: skip
    ):
        yield http, https, context


def _client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _head_and_one_byte(route: str) -> bytes:
    return (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{"
    ).encode()


def _open_slow(http: str, https: str, context: ssl.SSLContext) -> list[socket.socket]:
    """16 connections of each kind, left hanging."""
    hello = _client_hello()
    hanging: list[socket.socket] = []
    for _ in range(SLOW):
        plain = socket.create_connection(("127.0.0.1", _port(http)), timeout=5)
        plain.sendall(_head_and_one_byte("/seccompprofile/sync"))
        half = socket.create_connection(("127.0.0.1", _port(https)), timeout=5)
        half.sendall(hello[: len(hello) // 2])
        raw = socket.create_connection(("127.0.0.1", _port(https)), timeout=5)
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(_head_and_one_byte("/mutate-v1-pod-binding"))
        hanging += [plain, half, tls]
    return hanging


def _answers_within_deadline(
    request: urllib.request.Request, context: ssl.SSLContext | None
) -> bytes:
    failures = []
    for _ in range(TRIES):
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=DEADLINE, context=context) as response:
                body: bytes = response.read()
                status = response.status
        except OSError as error:
            failures.append(f"{type(error).__name__}: {error}")
            continue
        took = time.monotonic() - started
        if status == 200 and took <= DEADLINE:
            return body
        failures.append(f"status {status} after {took:.2f} s")
    pytest.fail(
        f"{request.full_url} did not answer within {DEADLINE} s in {TRIES} tries: {failures}"
    )


def _still_open(connections: list[socket.socket]) -> int:
    """How many of the hanging connections the server has not closed (nor answered)."""
    count = 0
    for connection in connections:
        connection.setblocking(False)
        try:
            connection.recv(1)  # b"" (closed) or the first byte of an answer: not held open
        except (BlockingIOError, ssl.SSLWantReadError):
            count += 1  # nothing yet: still open
        except OSError:
            pass  # reset
        finally:
            connection.setblocking(True)
    return count


def test_health_hooks_and_admission_answer_while_slow_clients_hang(
    servers: tuple[str, str, ssl.SSLContext],
) -> None:
    http, https, context = servers
    hanging = _open_slow(http, https, context)
    try:
        assert _still_open(hanging) == 3 * SLOW  # they really are held open meanwhile
        review = (ADMISSION / "request.json").read_bytes()
        json_type = {"Content-Type": "application/json"}
        for base, ctx in ((http, None), (https, context)):
            _answers_within_deadline(urllib.request.Request(f"{base}/healthz"), ctx)
        body = _answers_within_deadline(
            urllib.request.Request(
                f"{https}/mutate-v1-pod-binding", data=review, headers=json_type
            ),
            context,
        )
        assert json.loads(body)["response"]["patch"]  # a real answer: the pod is bound
        body = _answers_within_deadline(
            urllib.request.Request(
                f"{http}/seccompprofile/sync", data=SYNC.read_bytes(), headers=json_type
            ),
            None,
        )
        assert json.loads(body)["status"]["status"] == "Installed"
        assert _still_open(hanging) == 3 * SLOW
    finally:
        for connection in hanging:
            connection.close()


def test_hanging_connections_are_closed_in_time(servers: tuple[str, str, ssl.SSLContext]) -> None:
    """Neither a stalled body nor a stalled TLS handshake holds a connection past its timeout."""
    http, https, context = servers
    hanging = _open_slow(http, https, context)
    try:
        limit = max(hook_serving.IO_TIMEOUT, hook_serving.HANDSHAKE_SECONDS) + 10
        deadline = time.monotonic() + limit
        while _still_open(hanging) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _still_open(hanging) == 0, f"connections still open after {limit} s"
    finally:
        for connection in hanging:
            connection.close()
