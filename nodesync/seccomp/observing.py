"""Look at what is under the operator root, without following any symlink.

The root is opened as the executor opens it (``writing.open_root``): when
``seccomp`` or ``seccomp/operator`` is a symbolic link, ``UnsafeRoot`` is raised.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from nodesync.nodeio.atomicfiles import open_root
from nodesync.seccomp.plan import EntryType, Observed
from nodesync.seccomp.writing import GUARDED

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = _READ | os.O_DIRECTORY


def _type(mode: int) -> EntryType:
    if stat.S_ISREG(mode):
        return EntryType.FILE
    if stat.S_ISDIR(mode):
        return EntryType.DIR
    return EntryType.OTHER


def _digest(name: str, dir_fd: int) -> str | None:
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 16):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def _entry(relpath: str, name: str, dir_fd: int) -> Observed | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    kind = _type(st.st_mode)
    digest = _digest(name, dir_fd) if kind is EntryType.FILE else None
    return Observed(relpath, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, digest)


def _open_dir(path: str | Path, dir_fd: int | None = None) -> int | None:
    try:
        return os.open(path, _DIR, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise


def observe_tree(root: Path) -> list[Observed]:
    """Every entry at depth 1 and 2 under the operator root ``root``."""
    root_fd = open_root(root, guarded=GUARDED, mode=None)
    if root_fd is None:
        return []
    found: list[Observed] = []
    try:
        for namespace in sorted(os.listdir(root_fd)):
            entry = _entry(namespace, namespace, root_fd)
            if entry is None:
                continue
            found.append(entry)
            if entry.type is not EntryType.DIR:
                continue
            ns_fd = _open_dir(namespace, root_fd)
            if ns_fd is None:
                continue
            try:
                for name in sorted(os.listdir(ns_fd)):
                    child = _entry(f"{namespace}/{name}", name, ns_fd)
                    if child is not None:
                        found.append(child)
            finally:
                os.close(ns_fd)
    finally:
        os.close(root_fd)
    return found


def observe_files(root: Path, relpaths: Iterable[str]) -> list[Observed]:
    """Just the given ``<ns>/<name>.json`` entries, for a change to a single profile."""
    root_fd = open_root(root, guarded=GUARDED, mode=None)
    if root_fd is None:
        return []
    found: list[Observed] = []
    try:
        for relpath in sorted(set(relpaths)):
            namespace, name = relpath.split("/", 1)
            ns_fd = _open_dir(namespace, root_fd)
            if ns_fd is None:
                continue
            try:
                entry = _entry(relpath, name, ns_fd)
            finally:
                os.close(ns_fd)
            if entry is not None:
                found.append(entry)
    finally:
        os.close(root_fd)
    return found
