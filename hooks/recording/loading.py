"""Reading the recording table from the mounted ConfigMap file: the recording webhook's only I/O.

The same contract as the binding table's file (``hooks.binding.loading``): the
path is stat'ed on every call and parsed again only when the file's identity
(device, inode, size, mtime) changed, which is what the kubelet's symlink swap
of a ConfigMap volume changes; an unreadable file keeps the last good table;
with no good table yet, ``current`` says so and the webhook warns.

The file is ``SPO_RECORDINGS_FILE`` when set, else ``recordings.json`` next to
the binding table, because both are keys of the one mounted ConfigMap.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from hooks.binding import loading as binding_loading
from hooks.logs import about
from hooks.recording.table import EMPTY, FILE_KEY, RecordingTable, TableError, decode

log = logging.getLogger(__name__)

ENV = "SPO_RECORDINGS_FILE"


def default_path(bindings_file: str | Path | None) -> Path:
    """``recordings.json`` in the folder of the binding table (the mounted ConfigMap)."""
    return Path(bindings_file or binding_loading.DEFAULT_PATH).with_name(FILE_KEY)


@dataclass(frozen=True)
class Loaded:
    table: RecordingTable
    loaded: bool


_Identity = tuple[int, int, int, int]


class TableFile:
    """The recording table of one file, reloaded when the file changes; safe across threads."""

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
                log.warning("recording table file is gone; keeping the last table", extra=about(path=str(self.path)))
            return
        try:
            table = decode(self.path.read_bytes())
        except (OSError, TableError) as error:
            log.error(
                "recording table unreadable; keeping the last table: %s",
                error,
                extra=about(path=str(self.path), reason="InvalidRecordingTable"),
            )
            return
        self._current = Loaded(table, loaded=True)
        log.info("recording table loaded: %d recordings", table.count(), extra=about(path=str(self.path), count=table.count()))
