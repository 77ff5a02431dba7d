"""The node programs' HTTP servers, each in daemon threads.

- ``start``: ``/healthz``, ``/readyz`` and (unless told not to) ``/metrics``, plain HTTP,
  for the kubelet's probes and for a program run by hand;
- ``start_secure``: the metrics over HTTPS for readers with a bearer token
  (:mod:`nodesync.nodeio.metricsauth`): the Service ``metrics`` in front of nodesync
  (docs/metrics.md);
- ``start_unix``: plain HTTP on a Unix socket, for another program of the same node
  (the log enricher hands its audit counters to nodesync this way); ``fetch_unix`` reads it.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import socketserver
import ssl
import stat
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nodesync.nodeio.logs import about
from nodesync.nodeio.metrics import Metrics
from nodesync.nodeio.metricsauth import Verdict

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
IO_SECONDS = 10.0  # a TLS handshake, and then a request, must be done within this
MAX_CONNECTIONS = 32  # secure listener: more at once are closed at once
RELOAD_SECONDS = 30.0  # how often the certificate files are looked at again
MAX_FETCHED = 64 << 20  # bytes read from another program's socket at most

Check = Callable[[], bool]
Route = Callable[[], bytes]
Guard = Callable[[str | None, str], Verdict]


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def _always() -> bool:
    return True


class _Handler(BaseHTTPRequestHandler):
    timeout = IO_SECONDS

    def _send(
        self, code: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args, extra=about("", ""))


def _serve(server: socketserver.BaseServer, name: str) -> None:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()


def start(
    bind: str,
    metrics: Metrics | None,
    ready: threading.Event | Check,
    healthy: Check = _always,
) -> ThreadingHTTPServer:
    """Serve in the background; returns the server (``.server_address``, ``.shutdown()``).

    ``/readyz`` answers 200 once ``ready`` (an event, or a check) says so, ``/healthz``
    while ``healthy()`` does; both 503 otherwise. ``/metrics`` (everything, unauthenticated)
    only given ``metrics``: a program that serves its metrics with ``start_secure``, or has
    none, passes None and keeps this listener for the probes alone."""
    is_ready: Check = ready.is_set if isinstance(ready, threading.Event) else ready

    class Handler(_Handler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                if healthy():
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(503, b"a loop has stopped\n", "text/plain")
            elif path == "/readyz":
                if is_ready():
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(503, b"not synced yet\n", "text/plain")
            elif path == "/metrics" and metrics is not None:
                self._send(200, metrics.exposition(), CONTENT_TYPE)
            else:
                self._send(404, b"not found\n", "text/plain")

    server = ThreadingHTTPServer(parse_bind(bind), Handler)
    server.daemon_threads = True
    _serve(server, "nodesync-http")
    host, port = server.server_address[:2]
    what = "/healthz, /readyz and /metrics" if metrics is not None else "/healthz and /readyz"
    log.info("serving %s on %s:%s", what, host, port, extra=about("", ""))
    return server


# -- HTTPS with a bearer token ------------------------------------------------------------------


class TlsFiles:
    """A server certificate and key read from files, read again when they change (a renewed
    certificate in a mounted Secret), and possibly not there yet (an optional Secret)."""

    def __init__(self, cert: str, key: str, *, clock: Callable[[], float] = time.monotonic):
        self.cert = cert
        self.key = key
        self.clock = clock
        self._context: ssl.SSLContext | None = None
        self._seen: tuple[Any, ...] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._said_missing = False

    def _signature(self) -> tuple[Any, ...]:
        found = []
        for path in (self.cert, self.key):
            info = os.stat(path)  # follows the Secret volume's symbolic links
            found.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(found)

    def context(self) -> ssl.SSLContext | None:
        """The current server context; None while the files cannot be read."""
        with self._lock:
            now = self.clock()
            if self._context is not None and now - self._checked < RELOAD_SECONDS:
                return self._context
            self._checked = now
            try:
                signature = self._signature()
                if signature != self._seen or self._context is None:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.minimum_version = ssl.TLSVersion.TLSv1_2
                    context.load_cert_chain(self.cert, self.key)
                    context.set_alpn_protocols(["http/1.1"])
                    if self._context is not None:
                        log.info("metrics certificate read again", extra=about("", ""))
                    self._context, self._seen = context, signature
                    self._said_missing = False
            except (OSError, ssl.SSLError) as error:
                if not self._said_missing:
                    log.warning(
                        "metrics certificate %s unreadable (%s): the secure metrics listener "
                        "refuses connections until it can be read",
                        self.cert,
                        error,
                        extra=about("", ""),
                    )
                    self._said_missing = True
                if self._context is None:
                    return None
            return self._context


class _TlsServer(ThreadingHTTPServer):
    """Accepts in one thread, does the TLS handshake and the request in the connection's own,
    at most ``MAX_CONNECTIONS`` at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], tls: TlsFiles) -> None:
        self.tls = tls
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self.tls.context()
        if context is None:
            return
        request.settimeout(IO_SECONDS)
        try:
            secure = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.debug("TLS handshake failed: %s", error, extra=about("", ""))
            return
        try:
            self.RequestHandlerClass(secure, client_address, self)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(OSError):
                secure.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics connection failed", exc_info=True, extra=about("", ""))


def start_secure(
    bind: str, routes: Mapping[str, Route], guard: Guard, tls: TlsFiles
) -> ThreadingHTTPServer:
    """Serve ``routes`` (path -> exposition) over HTTPS to the readers ``guard`` lets in.

    Every path is checked, known or not: 401 without an accepted token, 403 without the
    right on that path, then 404 for a path that is not served."""

    class Handler(_Handler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            verdict = guard(self.headers.get("Authorization"), path)
            if not verdict.allowed:
                headers = {"WWW-Authenticate": "Bearer"} if verdict.code == 401 else {}
                self._send(verdict.code, verdict.message.encode() + b"\n", "text/plain", headers)
                return
            route = routes.get(path)
            if route is None:
                self._send(404, b"not found\n", "text/plain")
                return
            self._send(200, route(), CONTENT_TYPE)

    server = _TlsServer(parse_bind(bind), Handler, tls)
    _serve(server, "nodesync-https")
    host, port = server.server_address[:2]
    log.info(
        "serving %s over HTTPS with bearer tokens on %s:%s",
        " and ".join(sorted(routes)),
        host,
        port,
        extra=about("", ""),
    )
    tls.context()  # says now when the certificate is not there yet
    return server


# -- a Unix socket between two programs of the node --------------------------------------------


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def server_close(self) -> None:
        """Close, and remove the socket from the folder (a host folder: nothing else would)."""
        super().server_close()
        where = Path(str(self.server_address))
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(where.lstat().st_mode):
                where.unlink()


def start_unix(
    path: str, routes: Mapping[str, Route], *, mode: int = 0o660, group: int | None = None
) -> socketserver.BaseServer:
    """Serve ``routes`` on the Unix socket ``path`` (a stale socket there is replaced),
    readable by its owner and ``group``; ``server_close()`` removes it."""
    where = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(where.lstat().st_mode):
            where.unlink()

    class Handler(_Handler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                self._send(404, b"not found\n", "text/plain")
            else:
                self._send(200, route(), CONTENT_TYPE)

        def address_string(self) -> str:
            return path

    server = _UnixServer(path, Handler)
    if group is not None:
        os.chown(path, -1, group)
    os.chmod(path, mode)
    _serve(server, "unix-http")
    log.info("serving %s on %s", " and ".join(sorted(routes)), path, extra=about("", ""))
    return server


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def fetch_unix(path: str, url_path: str, *, timeout: float = 5.0) -> bytes | None:
    """GET ``url_path`` from the program serving ``path``; None when it cannot be read (not
    running, no socket, a failure: said at debug level)."""
    connection = _UnixConnection(path, timeout)
    try:
        connection.request("GET", url_path)
        response = connection.getresponse()
        body = response.read(MAX_FETCHED + 1)
        if response.status != 200 or len(body) > MAX_FETCHED:
            log.debug("%s%s answered %s", path, url_path, response.status, extra=about("", ""))
            return None
        return body
    except (OSError, http.client.HTTPException) as error:
        log.debug("cannot read %s%s: %s", path, url_path, error, extra=about("", ""))
        return None
    finally:
        connection.close()
