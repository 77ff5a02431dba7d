"""Running the Flask app under gunicorn, from the ``spo hooks`` command."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from hooks.cluster.app import create_app


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


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


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
    tls = {"certfile": certfile, "keyfile": keyfile} if certfile else {}
    _Server(
        {
            **tls,
            "bind": bind,
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "timeout": 30,
            "graceful_timeout": 10,
            "accesslog": None,
            "child_exit": _child_exit,
            "post_worker_init": _post_worker_init,
        },
        factory,
    ).run()
