"""Reading the recording table from the mounted ConfigMap file (see ``hooks.cluster.tablefile``):
the recording webhook's only I/O.

The file is ``SPO_RECORDINGS_FILE`` when set, else ``recordings.json`` next to
the binding table, because both are keys of the one mounted ConfigMap.
"""

from __future__ import annotations

from pathlib import Path

from hooks.cluster import tablefile
from hooks.cluster.binding import loading as binding_loading
from hooks.cluster.recording.table import EMPTY, FILE_KEY, RecordingTable, TableError, decode

ENV = "SPO_RECORDINGS_FILE"


def default_path(bindings_file: str | Path | None) -> Path:
    """``recordings.json`` in the folder of the binding table (the mounted ConfigMap)."""
    return Path(bindings_file or binding_loading.DEFAULT_PATH).with_name(FILE_KEY)


class TableFile(tablefile.TableFile[RecordingTable]):
    """The recording table of one file, reloaded when the file changes; safe across threads."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path,
            what="recording",
            items="recordings",
            decode=decode,
            errors=TableError,
            empty=EMPTY,
            reason="InvalidRecordingTable",
        )
