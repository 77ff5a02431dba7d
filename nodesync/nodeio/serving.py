"""``/healthz``, ``/readyz`` and ``/metrics`` on a small HTTP server in a daemon thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nodesync.nodeio.logs import about
from nodesync.nodeio.metrics import Metrics

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


Check = Callable[[], bool]


def _always() -> bool:
    return True


def start(
    bind: str, metrics: Metrics, ready: threading.Event | Check, healthy: Check = _always
) -> ThreadingHTTPServer:
    """Serve in the background; returns the server (``.server_address``, ``.shutdown()``).

    ``/readyz`` answers 200 once ``ready`` (an event, or a check) says so, ``/healthz``
    while ``healthy()`` does; both 503 otherwise."""
    is_ready: Check = ready.is_set if isinstance(ready, threading.Event) else ready

    class Handler(BaseHTTPRequestHandler):
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
            elif path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args, extra=about("", ""))

    server = ThreadingHTTPServer(parse_bind(bind), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="nodesync-http", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    log.info("serving /healthz, /readyz and /metrics on %s:%s", host, port, extra=about("", ""))
    return server
