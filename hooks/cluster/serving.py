"""Running the Flask app under gunicorn, from the ``spo hooks`` command.

Slow clients. A thread (or process) per connection is held by whoever sends a
request slowly: eight connections that sent their headers and one byte of the
body, or half a TLS ClientHello, used to take every thread of the hooks and of
the webhook, so that ``/healthz`` and admission stopped answering. The workers
here are gevent's (a greenlet per connection, built for slow clients): a
connection that waits for its client costs a few KiB and no thread, so the
hooks keep answering while many clients dawdle. Each connection is also
bounded in time, so a patient client cannot hold one for good:

- every read and write of a client socket gives up after ``IO_TIMEOUT``
  seconds without progress;
- a TLS handshake must end within ``HANDSHAKE_SECONDS``;
- the request line and headers must arrive within ``HEAD_SECONDS`` (gunicorn's
  ``keepalive``, which is also how long an idle kept-alive connection stays);
- the body, the hook and the answer must be done within ``REQUEST_SECONDS``,
  or the client gets a 408 (Metacontroller waits 10 s for a hook, the API
  server at most 30 s for a webhook, so nobody waits for a longer answer);
- a worker holds at most ``WORKER_CONNECTIONS`` connections.

What a request may weigh is the app's business (``hooks.cluster.web.limits``).
"""

from __future__ import annotations

import gc
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from flask import Flask
from gevent import hub
from gevent import ssl as gevent_ssl
from gunicorn.app.base import BaseApplication
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.exceptions import RequestTimeout

from hooks.cluster.app import create_app

IO_TIMEOUT = 10.0
HANDSHAKE_SECONDS = 10.0
HEAD_SECONDS = 5
REQUEST_SECONDS = 30.0
WORKER_CONNECTIONS = 256


class HookWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker, with every client connection bounded in time."""

    def init_process(self) -> None:
        # A client that goes away or stalls during the TLS handshake ends the greenlet that
        # serves it with an OSError (SSLError, TimeoutError); that is no error of the service,
        # and gevent would print each one as a traceback.
        hub.Hub.NOT_ERROR = (*hub.Hub.NOT_ERROR, OSError)
        super().init_process()

    def patch(self) -> None:
        super().patch()
        # Accepted sockets (the TLS handshake happens before ``handle``) start with this timeout.
        socket.setdefaulttimeout(IO_TIMEOUT)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # GeventWorker.handle makes the socket blocking without a timeout: keep one.
        client.settimeout(IO_TIMEOUT)
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        late = RequestTimeout(f"the request was not done within {REQUEST_SECONDS:g} s")
        with gevent.Timeout(REQUEST_SECONDS, late):
            return super().handle_request(listener_name, req, sock, addr)


class _HandshakeDeadline(gevent_ssl.SSLContext):  # type: ignore[misc]
    """A server TLS context whose handshake must end within ``HANDSHAKE_SECONDS``, however
    slowly the client keeps sending."""

    def wrap_socket(  # noqa: PLR0917 (ssl.SSLContext.wrap_socket's own signature)
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: Any = None,
    ) -> Any:
        tls = super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )
        if do_handshake_on_connect:
            late = TimeoutError(f"the TLS handshake was not done within {HANDSHAKE_SECONDS:g} s")
            with gevent.Timeout(HANDSHAKE_SECONDS, late):
                try:
                    tls.do_handshake()
                except BaseException:
                    tls.close()
                    raise
        return tls


def _ssl_context(config: Any, default_factory: Any) -> ssl.SSLContext:
    context = _HandshakeDeadline(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile=config.certfile, keyfile=config.keyfile)
    return context


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], factory: Callable[[], Flask]) -> None:
        self.options = options
        self.factory = factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory()


def _post_worker_init(worker: Any) -> None:
    """Keep garbage collection out of the hooks' latency.

    A hook request parses every related object (hundreds of KiB of JSON, tens of
    thousands of containers); with the default thresholds the collector then
    walks the whole heap, modules and app included, every few requests, which
    was most of the p99 (17 ms against 4 ms, bench/bench_hooks.py). Freezing
    what the worker loaded takes it out of every collection, and a higher
    first threshold runs the collector less often on request garbage, which
    has no cycles to speak of.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _pre_fork(server: Any, worker: Any) -> None:
    """Share what the master loaded with the worker it is about to fork.

    The worker starts with the master's pages, shared until written. CPython writes to an
    object's header whenever the collector walks it, so the worker's first collections used to
    copy most of the master's heap (the hooks' modules, pydantic's schemas): 27 MiB of private
    pages per worker, against 15 MiB with the master's objects frozen (out of every
    collection) before the fork (PSS of master and two workers after 200 hook requests: 101
    MiB against 80). Nothing the master holds is garbage to collect later."""
    gc.freeze()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def options(
    bind: str, workers: int, certfile: str | None = None, keyfile: str | None = None
) -> dict[str, Any]:
    """gunicorn's settings for ``spo hooks``."""
    tls = (
        {"certfile": certfile, "keyfile": keyfile, "ssl_context": _ssl_context} if certfile else {}
    )
    return {
        **tls,
        "bind": bind,
        "workers": workers,
        "worker_class": HookWorker,
        "worker_connections": WORKER_CONNECTIONS,
        "keepalive": HEAD_SECONDS,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        # gunicorn >= 25.1 listens on $HOME/.gunicorn/gunicorn.ctl (or $XDG_RUNTIME_DIR) for
        # gunicornc: a second management interface nobody needs here, and two servers sharing
        # a HOME replaced each other's.
        "control_socket_disable": True,
        "child_exit": _child_exit,
        "post_worker_init": _post_worker_init,
        "pre_fork": _pre_fork,
    }


def serve(
    bind: str,
    workers: int,
    certfile: str | None = None,
    keyfile: str | None = None,
    *,
    factory: Callable[[], Flask] = create_app,
) -> None:
    """Serve the hooks with ``workers`` processes; their metrics are shared through a folder.

    With ``certfile`` and ``keyfile`` (PEM) the server speaks HTTPS only, as the
    API server requires of admission webhooks."""
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if shared:  # a restarted pod must not count its predecessor's requests
        os.makedirs(shared, exist_ok=True)
        for stale in Path(shared).glob("*.db"):
            stale.unlink()
    _Server(options(bind, workers, certfile, keyfile), factory).run()
