"""Reading a webhook's table from its mounted ConfigMap file: the admission path's only I/O.

The kubelet updates a ConfigMap volume by swapping a symlink, so the file's
identity (device, inode, size, mtime) changes with every update. ``current``
stats the path on each call (a few microseconds) and parses the file again
only when that identity changed. A file that cannot be read or parsed keeps
the last good table (and is logged once per change); with no good table yet,
``current`` says so and the webhook answers with a warning.

Shared by the binding table (``hooks.cluster.binding.loading``) and the recording
table (``hooks.cluster.recording.loading``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from hooks.logs import about

log = logging.getLogger(__name__)


class Table(Protocol):
    def count(self) -> int: ...


T = TypeVar("T", bound=Table)


@dataclass(frozen=True)
class Loaded(Generic[T]):
    table: T
    loaded: bool


_Identity = tuple[int, int, int, int]


class TableFile(Generic[T]):
    """The table of one file, reloaded when the file changes; safe across threads."""

    def __init__(
        self,
        path: str | Path,
        *,
        what: str,
        items: str,
        decode: Callable[[bytes], T],
        errors: type[Exception],
        empty: T,
        reason: str,
    ) -> None:
        self.path = Path(path)
        self._what, self._items, self._decode, self._errors, self._reason = (
            what,
            items,
            decode,
            errors,
            reason,
        )
        self._lock = threading.Lock()
        self._seen: _Identity | None = None
        self._current = Loaded(empty, loaded=False)

    def _identity(self) -> _Identity | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> Loaded[T]:
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
                log.warning(
                    "%s table file is gone; keeping the last table",
                    self._what,
                    extra=about(path=str(self.path)),
                )
            return
        try:
            table = self._decode(self.path.read_bytes())
        except (OSError, self._errors) as error:
            log.error(
                "%s table unreadable; keeping the last table: %s",
                self._what,
                error,
                extra=about(path=str(self.path), reason=self._reason),
            )
            return
        self._current = Loaded(table, loaded=True)
        log.info(
            "%s table loaded: %d %s",
            self._what,
            table.count(),
            self._items,
            extra=about(path=str(self.path), count=table.count()),
        )
