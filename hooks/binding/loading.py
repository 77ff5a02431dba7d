"""Reading the binding table from the mounted ConfigMap file: the webhook's only I/O.

The kubelet updates a ConfigMap volume by swapping a symlink, so the file's
identity (device, inode, size, mtime) changes with every update. ``current``
stats the path on each call (a few microseconds) and parses the file again
only when that identity changed. A file that cannot be read or parsed keeps
the last good table (and is logged once per change); with no good table yet,
``current`` says so and the webhook answers with a warning.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from hooks.binding.table import EMPTY, BindingTable, TableError, decode
from hooks.logs import about

log = logging.getLogger(__name__)

ENV = "SPO_BINDINGS_FILE"
DEFAULT_PATH = "/etc/spo/bindings/bindings.json"


@dataclass(frozen=True)
class Loaded:
    table: BindingTable
    loaded: bool


_Identity = tuple[int, int, int, int]


class TableFile:
    """The binding table of one file, reloaded when the file changes; safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: _Identity | None = None
        self._current = Loaded(EMPTY, loaded=False)

    def _identity(self) -> _Identity | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> Loaded:
        identity = self._identity()
        if identity == self._seen:
            return self._current
        with self._lock:
            if identity != self._seen:
                self._reload(identity)
            return self._current

    def _reload(self, identity: _Identity | None) -> None:
        self._seen = identity
        if identity is None:
            if self._current.loaded:
                log.warning("binding table file is gone; keeping the last table", extra=about(path=str(self.path)))
            return
        try:
            table = decode(self.path.read_bytes())
        except (OSError, TableError) as error:
            log.error(
                "binding table unreadable; keeping the last table: %s",
                error,
                extra=about(path=str(self.path), reason="InvalidBindingTable"),
            )
            return
        self._current = Loaded(table, loaded=True)
        log.info(
            "binding table loaded: %d bindings",
            table.count(),
            extra=about(path=str(self.path), count=table.count()),
        )
