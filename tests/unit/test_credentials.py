"""The API server's address and our credentials, from a kubeconfig or the pod's ServiceAccount
(nodesync.nodeio.credentials), and a request made with them over HTTPS (KubernetesCluster)."""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodesync.nodeio import credentials
from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.credentials import CredentialsError, TokenFile
from nodesync.nodeio.requesting import KubernetesCluster
from tests.helpers.unavailable import unavailable


def kubeconfig(folder: Path, cluster: dict[str, Any], user: dict[str, Any]) -> str:
    path = folder / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_a_token_kubeconfig_gives_the_server_and_the_token(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"server": "https://10.0.0.1:6443/"}, {"token": "t0k"})
    found = credentials.load(path)
    assert found.server == "https://10.0.0.1:6443"
    assert found.token() == "t0k"
    assert found.context.verify_mode == ssl.CERT_REQUIRED


def test_a_token_file_is_read_again_once_its_time_is_up(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    token = TokenFile(tmp_path / "token", ttl=3600)
    assert token() == "first"
    (tmp_path / "token").write_text("second\n")
    assert token() == "first"  # within its time
    token.ttl = 0
    assert token() == "second"


def test_files_a_kubeconfig_names_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file")
    path = kubeconfig(tmp_path, {"server": "https://h:1"}, {"tokenFile": "tok"})
    assert credentials.load(path).token() == "from-file"


@pytest.mark.parametrize("user", [{"exec": {"command": "aws"}}, {"auth-provider": {"name": "x"}}])
def test_unsupported_credentials_are_refused_by_name(tmp_path: Path, user: dict[str, Any]) -> None:
    path = kubeconfig(tmp_path, {"server": "https://h:1"}, user)
    with pytest.raises(CredentialsError, match="unsupported"):
        credentials.load(path)


def test_in_a_cluster_the_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path]
) -> None:
    (tmp_path / "token").write_text("sa-token")
    shutil.copy(pki["ca.crt"], tmp_path / "ca.crt")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = credentials.in_cluster(tmp_path)
    assert found.server == "https://[fd00::1]:443"
    assert found.token() == "sa-token"


def test_out_of_a_cluster_the_kubeconfig_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = kubeconfig(tmp_path, {"server": "https://h:2"}, {"token": "t"})
    monkeypatch.setenv("KUBECONFIG", path)
    assert credentials.load().server == "https://h:2"


# -- over HTTPS, as the API server is reached ---------------------------------------------------


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by the CA."""
    if shutil.which("openssl") is None:
        unavailable("the 'openssl' command is not on PATH")
    folder = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(folder, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=test-ca")  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(folder, "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}")  # fmt: skip
        (folder / f"{name}.ext").write_text(extension + "\n")
        _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                 "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
                 "-extfile", f"{name}.ext")  # fmt: skip
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture
def server(pki: dict[str, Path]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTPS server that requires a client certificate of the CA and answers every GET with
    what it saw: (its URL, the requests seen)."""
    seen: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
            seen.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "client": subject.get("commonName"),
                }
            )
            body = json.dumps({"items": [], "metadata": {"resourceVersion": "9"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca.crt"]))
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_a_request_carries_the_client_certificate_of_the_kubeconfigs_data(
    tmp_path: Path, pki: dict[str, Path], server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = server
    path = kubeconfig(
        tmp_path,
        {"server": url, "certificate-authority-data": _data(pki["ca.crt"])},
        {
            "client-certificate-data": _data(pki["client.crt"]),
            "client-key-data": _data(pki["client.key"]),
        },
    )
    cluster = KubernetesCluster(path, namespace="team-a")
    assert cluster.list_configmaps("a=b") == ([], "9")
    assert seen == [
        {
            "path": "/api/v1/namespaces/team-a/configmaps?labelSelector=a%3Db&limit=500",
            "authorization": None,
            "client": "client",
        }
    ]


def test_a_request_carries_the_token_and_checks_the_server_against_the_ca_file(
    tmp_path: Path, pki: dict[str, Path], server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = server
    path = kubeconfig(
        tmp_path,
        {"server": url, "certificate-authority": str(pki["ca.crt"])},
        {
            "token": "t0k",
            "client-certificate": str(pki["client.crt"]),
            "client-key": str(pki["client.key"]),
        },
    )
    KubernetesCluster(path).list_node_statuses("x=y")
    assert seen[0]["authorization"] == "Bearer t0k"
    # Another CA: the server is not trusted, the request is an ApiError (no answer).
    other = kubeconfig(tmp_path, {"server": url}, {"token": "t0k"})
    with pytest.raises(ApiError) as failure:
        KubernetesCluster(other).list_node_statuses("x=y")
    assert failure.value.status == 0
