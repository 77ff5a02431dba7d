"""Reading the binding table from the mounted ConfigMap file (see ``hooks.cluster.tablefile``):
the binding webhook's only I/O."""

from __future__ import annotations

from pathlib import Path

from hooks.cluster import tablefile
from hooks.cluster.binding.table import EMPTY, BindingTable, TableError, decode

ENV = "SPO_BINDINGS_FILE"
DEFAULT_PATH = "/etc/spo/bindings/bindings.json"


class TableFile(tablefile.TableFile[BindingTable]):
    """The binding table of one file, reloaded when the file changes; safe across threads."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path,
            what="binding",
            items="bindings",
            decode=decode,
            errors=TableError,
            empty=EMPTY,
            reason="InvalidBindingTable",
        )
