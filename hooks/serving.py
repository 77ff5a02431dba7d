"""Running the Flask app under gunicorn, from the ``spo hooks`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from hooks.app import create_app


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def serve(bind: str, workers: int, certfile: str | None = None, keyfile: str | None = None) -> None:
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
        }
    ).run()
