"""The node's authenticated metrics listener (nodesync/nodeio/serving.py, wired by
``spo nodesync --secure-metrics-bind``): HTTPS, 401/403/200 by the guard, /metrics and
/metrics-spod with the log enricher's audit counters of the node, and the plain listener
keeping the probes only."""

from __future__ import annotations

import argparse
import contextlib
import socket
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hooks.api.base import Object
from nodesync.command import nodesync as command
from nodesync.enricher.auditlog import parse
from nodesync.enricher.containers import ContainerRef
from nodesync.enricher.enriching import LogEnricher
from nodesync.nodeio import serving
from nodesync.nodeio.metrics import SELINUX, Metrics
from nodesync.nodeio.metricsauth import Verdict
from tests.helpers.metrics_reader import get, self_signed
from tests.unit.test_metrics_auth import READER, STRANGER, Reviews

SECCOMP_LINE = (
    "type=SECCOMP msg=audit(1700000000.123:42): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'pid=7 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 '
    "compat=0 ip=0x1 code=0x7ffc0000"
)


class BothPaths(Reviews):
    """READER may get both paths here."""

    def create_subject_access_review(self, body: Object) -> Object:
        answer = super().create_subject_access_review(body)
        if body["spec"]["user"] == "system:serviceaccount:monitoring:prometheus":
            answer = {"status": {"allowed": True}}
        return answer


@pytest.fixture
def enricher_socket(tmp_path: Path) -> Iterator[Path]:
    """A log enricher's audit counters on a Unix socket, one SECCOMP record counted."""
    registry = CollectorRegistry()
    enricher = LogEnricher("node-1", registry, {"c" * 64: ContainerRef("shop", "web", "app")}.get)
    record = parse(SECCOMP_LINE)
    assert record is not None
    enricher.enrich(record, "c" * 64)
    path = tmp_path / "enricher.sock"
    server = serving.start_unix(
        str(path), {"/metrics-spod": lambda: bytes(generate_latest(registry))}
    )
    yield path
    server.shutdown()
    server.server_close()


@pytest.fixture
def node(tmp_path: Path, enricher_socket: Path) -> Iterator[tuple[str, Path, Metrics]]:
    """nodesync's secure listener as ``spo nodesync`` starts it: (base URL, CA, metrics)."""
    cert, key = self_signed(tmp_path)
    metrics = Metrics()
    metrics.updated(2)
    metrics.error("CannotSaveSelinuxPolicy", kind=SELINUX)
    metrics.reconciled("seccompprofile", 0.02, failed=False)
    args = argparse.Namespace(
        secure_metrics_bind="127.0.0.1:0",
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        metrics_auth_ttl=30.0,
        enricher_metrics_socket=str(enricher_socket),
    )
    server = command.secure_metrics(args, metrics, BothPaths())
    host, port = server.server_address[:2]
    yield f"https://{host}:{port}", cert, metrics
    server.shutdown()
    server.server_close()


def test_no_token_is_401_an_unbound_reader_403_a_bound_one_200(
    node: tuple[str, Path, Metrics],
) -> None:
    base, ca, _ = node
    for path in ("/metrics", "/metrics-spod"):
        assert get(base + path, ca)[0] == 401
        assert get(base + path, ca, "forged")[0] == 401
        assert get(base + path, ca, STRANGER)[0] == 403
        code, body = get(base + path, ca, READER)
        assert code == 200, body


def test_metrics_spod_has_the_go_operators_counters_and_the_enrichers(
    node: tuple[str, Path, Metrics],
) -> None:
    base, ca, _ = node
    _, body = get(base + "/metrics-spod", ca, READER)
    assert 'security_profiles_operator_seccomp_profile_total{operation="update"} 2.0' in body
    assert (
        'security_profiles_operator_selinux_profile_error_total{reason="CannotSaveSelinuxPolicy"}'
        " 1.0" in body
    )
    assert (
        'security_profiles_operator_seccomp_profile_audit_total{container="app",'
        'executable="/bin/busybox",namespace="shop",node="node-1",pod="web",syscall="mkdir"} 1.0'
        in body
    )
    assert "controller_runtime" not in body
    # every family once: the two programs' expositions join without a clash
    types = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


def test_metrics_has_the_reconcile_loops(node: tuple[str, Path, Metrics]) -> None:
    base, ca, _ = node
    _, body = get(base + "/metrics", ca, READER)
    assert (
        'controller_runtime_reconcile_total{controller="seccompprofile",result="success"} 1.0'
        in body
    )
    assert (
        'controller_runtime_reconcile_time_seconds_count{controller="seccompprofile"} 1.0' in body
    )
    assert "security_profiles_operator" not in body


def test_without_the_enricher_metrics_spod_has_the_nodes_own(
    node: tuple[str, Path, Metrics], enricher_socket: Path
) -> None:
    base, ca, _ = node
    enricher_socket.unlink()
    code, body = get(base + "/metrics-spod", ca, READER)
    assert code == 200
    assert "security_profiles_operator_seccomp_profile_total" in body
    assert "audit_total{" not in body


def test_a_plain_http_client_or_a_bad_handshake_does_not_stop_the_listener(
    node: tuple[str, Path, Metrics],
) -> None:
    base, ca, _ = node
    host, port = base.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as plain:
        plain.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            plain.recv(100)
    assert get(base + "/metrics", ca, READER)[0] == 200


def test_unknown_paths_are_checked_then_404(tmp_path: Path) -> None:
    calls: list[str] = []

    def guard(authorization: str | None, path: str) -> Verdict:
        calls.append(path)
        return Verdict(200, "OK") if authorization else Verdict(401, "Unauthorized")

    cert, key = self_signed(tmp_path)
    server = serving.start_secure(
        "127.0.0.1:0", {"/metrics": lambda: b""}, guard, serving.TlsFiles(str(cert), str(key))
    )
    try:
        base = f"https://127.0.0.1:{server.server_address[1]}"
        assert get(base + "/other", cert)[0] == 401
        assert get(base + "/other", cert, "t")[0] == 404
        assert calls == ["/other", "/other"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_certificate_is_read_when_it_appears_and_again_when_renewed(tmp_path: Path) -> None:
    now = [0.0]
    files = serving.TlsFiles(
        str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), clock=lambda: now[0]
    )
    assert files.context() is None  # an optional Secret not written yet: nothing to serve
    self_signed(tmp_path)
    now[0] += serving.RELOAD_SECONDS
    first = files.context()
    assert first is not None
    assert files.context() is first
    time.sleep(0.01)
    self_signed(tmp_path)  # renewed
    assert files.context() is first  # looked at again only after RELOAD_SECONDS
    now[0] += serving.RELOAD_SECONDS
    renewed = files.context()
    assert renewed is not None and renewed is not first
    (tmp_path / "tls.crt").unlink()  # gone for a moment: the last one is kept
    now[0] += serving.RELOAD_SECONDS
    assert files.context() is renewed


def test_with_a_secure_listener_the_plain_one_serves_the_probes_only() -> None:
    server = serving.start("127.0.0.1:0", None, lambda: True)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/metrics", timeout=5)
        assert refused.value.code == 404
        refused.value.close()
    finally:
        server.shutdown()
        server.server_close()


def test_the_enrichers_socket_is_its_owners_and_groups_only(enricher_socket: Path) -> None:
    mode = stat.S_IMODE(enricher_socket.stat().st_mode)
    assert mode == 0o660
    body = serving.fetch_unix(str(enricher_socket), "/metrics-spod")
    assert body is not None and b"seccomp_profile_audit_total{" in body
    assert serving.fetch_unix(str(enricher_socket), "/nothing") is None
    assert serving.fetch_unix(str(enricher_socket) + ".missing", "/metrics-spod") is None


def test_a_closed_unix_server_removes_its_socket(tmp_path: Path) -> None:
    """The socket is in a host folder: the program that made it removes it when it stops."""
    path = tmp_path / "enricher.sock"
    server = serving.start_unix(str(path), {"/metrics-spod": lambda: b"x 1\n"})
    assert serving.fetch_unix(str(path), "/metrics-spod") == b"x 1\n"
    server.shutdown()
    server.server_close()
    assert not path.exists()
