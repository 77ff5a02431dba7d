"""The test client of the API server (``tests/helpers/kubeapi``) sends a request again on a new
connection when its kept-alive one turns out closed, and only then (the node tests' emulated
Metacontroller keeps a connection per worker thread, idle for minutes at a time)."""

from __future__ import annotations

import http.client
import ssl
from typing import Any

import pytest

from tests.helpers.kubeapi import KubeApi


class _Response:
    status = 200

    def read(self) -> bytes:
        return b'{"kind": "Namespace"}'

    def getheader(self, name: str) -> str | None:
        return None


class _Connection:
    """Fails on sending with ``error`` (when given), else answers."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.sent: list[tuple[str, str]] = []
        self.closed = False

    def putrequest(self, method: str, url: str) -> None:
        self.sent.append((method, url))

    def putheader(self, name: str, value: str) -> None:
        pass

    def endheaders(self, data: bytes | None = None) -> None:
        if self.error is not None:
            raise self.error

    def getresponse(self) -> _Response:
        return _Response()

    def close(self) -> None:
        self.closed = True


def _client(monkeypatch: pytest.MonkeyPatch, *errors: BaseException | None) -> Any:
    api = KubeApi("https://127.0.0.1:6443", ssl.create_default_context())
    connections = [_Connection(error) for error in errors]
    handed = iter(connections)
    current: list[_Connection] = []

    def connection() -> _Connection:
        if not current:
            current.append(next(handed))
        return current[0]

    def drop() -> None:
        current.pop().close()

    monkeypatch.setattr(api, "_connection", connection)
    monkeypatch.setattr(api, "_drop_connection", drop)
    return api, connections


@pytest.mark.parametrize(
    "closed",
    [
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        BrokenPipeError(32, "Broken pipe"),
        ConnectionResetError(104, "Connection reset by peer"),
        http.client.RemoteDisconnected("Remote end closed connection"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_request_on_a_closed_connection_is_sent_again_on_a_new_one(
    monkeypatch: pytest.MonkeyPatch, closed: BaseException
) -> None:
    api, (stale, fresh) = _client(monkeypatch, closed, None)
    assert api.call("GET", "/api/v1/namespaces/x", verb="get") == {"kind": "Namespace"}
    assert stale.closed and stale.sent == [("GET", "/api/v1/namespaces/x")]
    assert fresh.sent == [("GET", "/api/v1/namespaces/x")] and not fresh.closed


def test_a_second_closed_connection_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    api, connections = _client(monkeypatch, eof, eof)
    with pytest.raises(ssl.SSLEOFError):
        api.call("GET", "/api/v1/namespaces/x", verb="get")
    assert all(c.closed for c in connections)


def test_other_errors_are_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    api, (only,) = _client(monkeypatch, refused)
    with pytest.raises(ssl.SSLCertVerificationError):
        api.call("GET", "/api/v1/namespaces/x", verb="get")
    assert only.closed and len(only.sent) == 1
