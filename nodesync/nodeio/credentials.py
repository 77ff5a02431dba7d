"""Where the API server is and how to prove who we are to it: the pod's ServiceAccount (in a
cluster) or a kubeconfig file.

Read here rather than through the kubernetes client package, whose import alone (every
generated API class and model) took 11 MiB of each process that talks to the API: every
nodesync, the webhook, the hooks pod's metrics container. What is read:

- in a cluster: ``$KUBERNETES_SERVICE_HOST``/``_PORT``, the ServiceAccount's ``ca.crt``, and its
  ``token``, read again every ``TOKEN_TTL`` seconds (the kubelet rotates a bound token);
- a kubeconfig (``--kubeconfig``, else the first file of ``$KUBECONFIG``, else
  ``~/.kube/config``), its current context: the cluster's ``server``,
  ``certificate-authority[-data]``, ``insecure-skip-tls-verify`` and ``tls-server-name``; the
  user's ``token``, ``tokenFile`` (read again as in a cluster) and
  ``client-certificate[-data]`` with ``client-key[-data]``. Exec plugins, auth providers and
  basic auth are refused by name (``CredentialsError``).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_TTL = 60.0


class CredentialsError(Exception):
    """No usable cluster address or credentials."""


@dataclass(frozen=True)
class Credentials:
    server: str  # https://host:port, no trailing slash
    context: ssl.SSLContext
    token: Callable[[], str | None]  # the bearer token now, if any
    server_hostname: str | None = None  # the name to check the server's certificate against


class TokenFile:
    """A token file, read again once ``ttl`` seconds have passed (thread-safe)."""

    def __init__(self, path: Path, ttl: float = TOKEN_TTL) -> None:
        self.path = path
        self.ttl = ttl
        self._lock = threading.Lock()
        self._token = ""
        self._read_at = -ttl

    def __call__(self) -> str:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                self._token = self.path.read_text().strip()
                self._read_at = time.monotonic()
            return self._token


def in_cluster(account: Path = SERVICE_ACCOUNT) -> Credentials:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (account / "token").is_file():
        raise CredentialsError("not in a cluster: no service host or ServiceAccount token")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    context = ssl.create_default_context(cafile=str(account / "ca.crt"))
    return Credentials(f"https://{host}:{port}", context, TokenFile(account / "token"))


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise CredentialsError(f"kubeconfig: no {what} named {name!r}")


def _path(base: Path, value: str) -> str:
    """A file a kubeconfig names, relative to the kubeconfig's folder."""
    return str(base / Path(value).expanduser())


def _client_certificate(context: ssl.SSLContext, user: Mapping[str, Any], base: Path) -> None:
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if cert and key:
        # ssl loads a certificate chain from files only: written for the load, then removed.
        with tempfile.TemporaryDirectory(prefix="spo-client-cert-") as folder:
            cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert_file.write_bytes(base64.b64decode(cert))
            key_file.write_bytes(base64.b64decode(key))
            context.load_cert_chain(cert_file, key_file)
    elif user.get("client-certificate") and user.get("client-key"):
        context.load_cert_chain(
            _path(base, user["client-certificate"]), _path(base, user["client-key"])
        )


def from_kubeconfig(path: str | None = None) -> Credentials:
    if path is None:
        listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        path = listed[0] if listed else str(Path("~/.kube/config").expanduser())
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CredentialsError(f"kubeconfig {path}: {error}") from error
    base = Path(path).resolve().parent
    current = config.get("current-context")
    if not current:
        raise CredentialsError(f"kubeconfig {path}: no current-context")
    chosen = _named(config.get("contexts"), current, "context")
    cluster = _named(config.get("clusters"), str(chosen.get("cluster")), "cluster")
    user = _named(config.get("users"), str(chosen.get("user")), "user")
    for unsupported in ("exec", "auth-provider", "username"):
        if user.get(unsupported):
            raise CredentialsError(f"kubeconfig {path}: {unsupported} credentials unsupported")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise CredentialsError(f"kubeconfig {path}: the cluster has no server")
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        data = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=data)
    elif cluster.get("certificate-authority"):
        context = ssl.create_default_context(cafile=_path(base, cluster["certificate-authority"]))
    else:
        context = ssl.create_default_context()
    _client_certificate(context, user, base)
    token: Callable[[], str | None]
    if user.get("token"):
        fixed = str(user["token"])
        token = lambda: fixed  # noqa: E731
    elif user.get("tokenFile"):
        token = TokenFile(Path(_path(base, user["tokenFile"])))
    else:
        token = lambda: None  # noqa: E731
    return Credentials(server, context, token, cluster.get("tls-server-name") or None)


def load(kubeconfig: str | None = None) -> Credentials:
    """``kubeconfig`` if given; else the pod's ServiceAccount; else ``$KUBECONFIG`` or
    ``~/.kube/config``."""
    if kubeconfig:
        return from_kubeconfig(kubeconfig)
    try:
        return in_cluster()
    except CredentialsError:
        return from_kubeconfig()
