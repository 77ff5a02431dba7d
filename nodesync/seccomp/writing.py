"""The executor: the only code that changes files under the operator root.

A profile is written atomically: a temporary file in the same directory gets
the bytes, its fixed mode and owner, and an fsync; it is then renamed over the
final name, and the directory is fsynced once after all renames in it. A
reader therefore sees the old file or the new one, never a partial one. Every
operation goes through directory file descriptors opened with O_NOFOLLOW, so a
symlink planted below the root is never written through; nor is one planted
as the root itself: ``<kubelet dir>/seccomp`` and ``<kubelet dir>/seccomp/operator``
are opened without following a symbolic link (``open_root``), and nodesync
refuses to write, change modes or remove anything when either is one
(``UnsafeRoot``). The kubelet directory, set by the administrator, may be a link.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nodesync.nodeio import reasons
from nodesync.nodeio.atomicfiles import (
    Perms,
    UnsafeRoot,
    open_root,
    set_perms,
    write_atomically,
)
from nodesync.seccomp.plan import Action, FixDir, Remove, RemoveDir, Write, namespace_of

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_INLINE = 4  # fewer writes than this are not worth a thread pool
GUARDED = 2  # <kubelet dir>/seccomp/operator: "seccomp" and "operator" are never followed


@dataclass
class Result:
    """What the executor did: relative paths written and removed, and errors by path.

    ``errors`` are failed writes of profiles (reported in their outcome);
    ``other_errors`` are everything else, as (reason, message).
    """

    written: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    other_errors: dict[str, tuple[str, str]] = field(default_factory=dict)


def _open_namespace(root_fd: int, namespace: str, perms: Perms, *, create: bool) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(namespace, perms.dir_mode, dir_fd=root_fd)
    fd = os.open(namespace, _DIR, dir_fd=root_fd)
    if create:
        set_perms(fd, perms.dir_mode, perms)
    return fd


class Executor:
    """Carries out a plan under one operator root."""

    def __init__(self, root: Path, perms: Perms, *, workers: int = 16) -> None:
        self.root = root
        self.perms = perms
        self.workers = workers

    @contextlib.contextmanager
    def _root(self) -> Iterator[int]:
        fd = open_root(self.root, guarded=GUARDED, mode=self.perms.dir_mode)
        assert fd is not None
        try:
            set_perms(fd, self.perms.dir_mode, self.perms)
            yield fd
        finally:
            os.close(fd)

    def execute(self, actions: Sequence[Action]) -> Result:
        result = Result()
        if not actions:
            return result
        try:
            with self._root() as root_fd:
                self._execute(root_fd, actions, result)
        except OSError as error:
            message = (
                str(error)
                if isinstance(error, UnsafeRoot)
                else f"operator root {self.root}: {error.strerror}"
            )
            for action in actions:
                if isinstance(action, Write):
                    result.errors.setdefault(action.relpath, message)
                else:
                    result.other_errors.setdefault(action.relpath, (reasons.CANNOT_REMOVE, message))
        return result

    def _execute(self, root_fd: int, actions: Sequence[Action], result: Result) -> None:
        dirty: set[str] = set()  # namespace directories whose entries changed
        root_dirty = False
        for action in actions:
            if isinstance(action, Remove):
                root_dirty |= "/" not in action.relpath
                if self._remove(root_fd, action, result):
                    dirty.add(namespace_of(action.relpath))
            elif isinstance(action, FixDir):
                fix = functools.partial(self._fix, root_fd, action.relpath)
                self._guard(action.relpath, reasons.CANNOT_SAVE, result, fix)
        writes = [a for a in actions if isinstance(a, Write)]
        by_namespace: dict[str, list[Write]] = {}
        for write in writes:
            by_namespace.setdefault(namespace_of(write.relpath), []).append(write)
        ns_fds: dict[str, int] = {}
        try:
            for namespace, group in by_namespace.items():
                try:
                    ns_fds[namespace] = _open_namespace(root_fd, namespace, self.perms, create=True)
                    root_dirty = True
                except OSError as error:
                    for write in group:
                        result.errors[write.relpath] = (
                            f"cannot create directory {namespace}: {error.strerror}"
                        )
            runnable = [w for w in writes if namespace_of(w.relpath) in ns_fds]
            self._write_all(runnable, ns_fds, result)
            for namespace, fd in ns_fds.items():
                self._guard(namespace, reasons.CANNOT_SAVE, result, functools.partial(os.fsync, fd))
            dirty.difference_update(ns_fds)
        finally:
            for fd in ns_fds.values():
                os.close(fd)
        for namespace in sorted(dirty):
            self._fsync_namespace(root_fd, namespace, result)
        for action in actions:
            if isinstance(action, RemoveDir):
                root_dirty |= self._remove_dir(root_fd, action.relpath, result)
        if root_dirty:
            self._guard(".", reasons.CANNOT_SAVE, result, lambda: os.fsync(root_fd))

    def _write_all(self, writes: list[Write], ns_fds: dict[str, int], result: Result) -> None:
        def one(write: Write) -> tuple[str, str | None]:
            namespace, name = write.relpath.split("/", 1)
            try:
                write_atomically(ns_fds[namespace], name, write.content, self.perms)
            except OSError as error:
                return write.relpath, error.strerror or str(error)
            return write.relpath, None

        def share(part: Sequence[Write]) -> list[tuple[str, str | None]]:
            return [one(write) for write in part]

        if len(writes) < _INLINE or self.workers <= 1:
            outcomes = share(writes)
        else:  # one task per thread, not per file: 10,000 futures would cost megabytes
            parts = [writes[i :: self.workers] for i in range(self.workers)]
            with ThreadPoolExecutor(self.workers, thread_name_prefix="nodesync-write") as pool:
                outcomes = [pair for done in pool.map(share, parts) for pair in done]
        for relpath, error in outcomes:
            if error is None:
                result.written.add(relpath)
            else:
                result.errors[relpath] = f"cannot write {relpath}: {error}"

    def _remove(self, root_fd: int, action: Remove, result: Result) -> bool:
        if "/" in action.relpath:
            namespace, name = action.relpath.split("/", 1)
            try:
                parent = os.open(namespace, _DIR, dir_fd=root_fd)
            except FileNotFoundError:
                return False
            except OSError as error:
                message = f"cannot open {namespace}: {error.strerror}"
                result.other_errors[action.relpath] = (reasons.CANNOT_REMOVE, message)
                return False
        else:
            name, parent = action.relpath, os.dup(root_fd)
        try:
            if action.tree:
                shutil.rmtree(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            return False
        except OSError as error:
            message = f"cannot remove {action.relpath}: {error.strerror}"
            result.other_errors[action.relpath] = (reasons.CANNOT_REMOVE, message)
            return False
        finally:
            os.close(parent)
        result.removed.append(action.relpath)
        return True

    def _fix(self, root_fd: int, namespace: str) -> None:
        fd = os.open(namespace, _DIR, dir_fd=root_fd)
        try:
            set_perms(fd, self.perms.dir_mode, self.perms)
        finally:
            os.close(fd)

    def _fsync_namespace(self, root_fd: int, namespace: str, result: Result) -> None:
        try:
            fd = os.open(namespace, _DIR, dir_fd=root_fd)
        except OSError:
            return  # removed as a whole: the root's fsync covers it
        try:
            self._guard(namespace, reasons.CANNOT_REMOVE, result, lambda: os.fsync(fd))
        finally:
            os.close(fd)

    def _remove_dir(self, root_fd: int, namespace: str, result: Result) -> bool:
        try:
            os.rmdir(namespace, dir_fd=root_fd)
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                message = f"cannot remove directory {namespace}: {error.strerror}"
                result.other_errors[namespace] = (reasons.CANNOT_REMOVE, message)
            return False
        result.removed.append(namespace)
        return True

    @staticmethod
    def _guard(relpath: str, reason: str, result: Result, operation: Callable[[], object]) -> None:
        try:
            operation()
        except OSError as error:
            result.other_errors[relpath] = (reason, f"{relpath}: {error.strerror}")
