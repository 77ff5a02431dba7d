"""A client of selinuxd's status API: HTTP/1.1 over its unix socket, with the standard library.

selinuxd answers ``GET /ready`` with ``{"ready": bool}`` (true once it has gone
through the policies present at its start), ``GET /policies/`` with the list of
policy names it knows, and ``GET /policies/<name>`` with
``{"status": "Installed"|"Failed", "msg": "..."}``, or 404 while it has not
handled the policy yet.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

DEFAULT_SOCKET = "/var/run/selinuxd/selinuxd.sock"
INSTALLED = "Installed"
FAILED = "Failed"


class SelinuxdError(Exception):
    """selinuxd could not be asked, or gave an answer that makes no sense."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` whose transport is a unix stream socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    name: str
    status: str  # Installed or Failed
    message: str

    @property
    def installed(self) -> bool:
        return self.status == INSTALLED


class SelinuxdClient:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, *, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _get(self, path: str) -> tuple[int, bytes]:
        connection = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            raise SelinuxdError(f"cannot reach selinuxd at {self.socket_path}: {error}") from error
        finally:
            connection.close()

    @staticmethod
    def _json(path: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as error:
            raise SelinuxdError(f"selinuxd answered {path} with invalid JSON: {error}") from error

    def ready(self) -> bool:
        """Whether selinuxd has handled the policies that were there when it started."""
        status, body = self._get("/ready")
        if status != 200:
            raise SelinuxdError(f"selinuxd answered /ready with HTTP {status}")
        document = self._json("/ready", body)
        return isinstance(document, dict) and document.get("ready") is True

    def policies(self) -> list[str]:
        status, body = self._get("/policies/")
        if status != 200:
            raise SelinuxdError(f"selinuxd answered /policies/ with HTTP {status}")
        document = self._json("/policies/", body)
        if not isinstance(document, list):
            raise SelinuxdError("selinuxd answered /policies/ with something else than a list")
        return [str(item) for item in document]

    def status(self, policy: str) -> PolicyStatus | None:
        """The policy's status, or None while selinuxd has not handled it (404)."""
        path = "/policies/" + urllib.parse.quote(policy, safe="")
        code, body = self._get(path)
        if code == 404:
            return None
        if code != 200:
            raise SelinuxdError(f"selinuxd answered {path} with HTTP {code}")
        document = self._json(path, body)
        if not isinstance(document, dict) or document.get("status") not in (INSTALLED, FAILED):
            raise SelinuxdError(f"selinuxd answered {path} with an unknown status: {document!r}")
        message = document.get("msg")
        return PolicyStatus(
            policy, str(document["status"]), message if isinstance(message, str) else ""
        )
