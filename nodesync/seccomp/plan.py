"""The reconcile decision, pure: desired files + observed entries -> actions.

Relative paths are POSIX strings under the operator root: ``<ns>`` for a
namespace directory, ``<ns>/<name>.json`` for a profile. What was observed
defines the scope: an observed entry that nothing asks for is removed, so a full
scan converges the whole tree and a scan of one path touches only that path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from nodesync.nodeio.atomicfiles import Perms


class EntryType(StrEnum):
    FILE = "file"
    DIR = "dir"
    OTHER = "other"  # symlinks, fifos, sockets, devices: never followed, never kept


@dataclass(frozen=True, slots=True)
class Observed:
    relpath: str
    type: EntryType
    mode: int  # permission bits only
    uid: int
    gid: int
    digest: str | None = None  # sha256 of a regular file's bytes


@dataclass(frozen=True, slots=True)
class Wanted:
    relpath: str
    content: bytes
    digest: str


@dataclass(frozen=True, slots=True)
class Write:
    relpath: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Remove:
    relpath: str
    tree: bool = False  # a directory where a file belongs, or a directory nobody asked for


@dataclass(frozen=True, slots=True)
class FixDir:
    relpath: str


@dataclass(frozen=True, slots=True)
class RemoveDir:
    relpath: str  # an emptied namespace directory; kept if something is still inside


Action = Write | Remove | FixDir | RemoveDir


def namespace_of(relpath: str) -> str:
    return relpath.split("/", 1)[0]


def _mismatch(entry: Observed, mode: int, perms: Perms) -> bool:
    return entry.mode != mode or entry.uid != perms.uid or entry.gid != perms.gid


def plan(desired: Mapping[str, Wanted], observed: Iterable[Observed], perms: Perms) -> list[Action]:
    """The actions that make the observed entries match ``desired``; none when they already do.

    Order: removals (which may clear the way), directory fixes, writes, then
    the removal of namespace directories that no longer hold any profile.
    """
    removals: list[Remove] = []
    fixes: list[FixDir] = []
    writes: list[Write] = []
    emptied: list[RemoveDir] = []
    wanted_namespaces = {namespace_of(relpath) for relpath in desired}
    seen: set[str] = set()
    for entry in observed:
        seen.add(entry.relpath)
        if "/" not in entry.relpath:
            if entry.type is not EntryType.DIR:
                removals.append(Remove(entry.relpath))
            elif entry.relpath not in wanted_namespaces:
                emptied.append(RemoveDir(entry.relpath))
            elif _mismatch(entry, perms.dir_mode, perms):
                fixes.append(FixDir(entry.relpath))
            continue
        want = desired.get(entry.relpath)
        if want is None:
            removals.append(Remove(entry.relpath, tree=entry.type is EntryType.DIR))
        elif entry.type is EntryType.DIR:
            removals.append(Remove(entry.relpath, tree=True))
            writes.append(Write(want.relpath, want.content))
        elif (
            entry.type is not EntryType.FILE
            or entry.digest != want.digest
            or _mismatch(entry, perms.file_mode, perms)
        ):
            writes.append(Write(want.relpath, want.content))
    writes.extend(
        Write(w.relpath, w.content) for relpath, w in desired.items() if relpath not in seen
    )
    actions: list[Action] = []
    actions.extend(sorted(removals, key=lambda a: a.relpath))
    actions.extend(sorted(fixes, key=lambda a: a.relpath))
    actions.extend(sorted(writes, key=lambda a: a.relpath))
    actions.extend(sorted(emptied, key=lambda a: a.relpath))
    return actions
