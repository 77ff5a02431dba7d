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
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nodesync import reasons
from nodesync.plan import Action, FixDir, Perms, Remove, RemoveDir, Write, namespace_of

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_SUFFIX = ".tmp"
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


class UnsafeRoot(OSError):
    """A folder nodesync writes in is a symbolic link, or not a folder: it writes nothing there."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unsafe root"


def _refusal(path: Path) -> UnsafeRoot:
    try:
        target = os.readlink(path)
    except OSError:
        return UnsafeRoot(f"{path} is not a directory: nodesync writes nothing there")
    return UnsafeRoot(
        f"{path} is a symbolic link to {target}: nodesync does not write through symbolic links"
    )


def open_root(root: Path, *, guarded: int, mode: int | None) -> int | None:
    """A directory descriptor of ``root`` whose last ``guarded`` components were opened one by
    one without following a symbolic link (raises ``UnsafeRoot`` for one); the components
    above, given by the administrator, may be links. ``mode``: create what is missing with
    it; None: return None when something is missing."""
    parts = root.parts[len(root.parts) - guarded :]
    base = root.parents[guarded - 1] if guarded else root
    if mode is not None:
        _make_dirs(base, mode)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if mode is None:
            return None
        raise
    path = base
    for part in parts:
        path = path / part
        try:
            if mode is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
            child = os.open(part, _DIR, dir_fd=fd)
        except OSError as error:
            os.close(fd)
            if error.errno == errno.ENOENT and mode is None:
                return None
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refusal(path) from error
            raise
        os.close(fd)
        fd = child
    return fd


def temp_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _set_perms(fd: int, mode: int, perms: Perms) -> None:
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (perms.uid, perms.gid):
        os.fchown(fd, perms.uid, perms.gid)
    if st.st_mode & 0o7777 != mode:
        os.fchmod(fd, mode)


def write_atomically(dir_fd: int, name: str, content: bytes, perms: Perms, *, into: int | None = None) -> None:
    """Replace ``name`` in ``dir_fd`` (or in ``into``, the temporary file staying in ``dir_fd``
    until the rename) with ``content``; the caller fsyncs the directory."""
    target = dir_fd if into is None else into
    temporary = temp_name(name)
    fd = os.open(temporary, _NEW, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            _set_perms(fd, perms.file_mode, perms)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def _make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` and its missing ancestors (never changing existing ones)."""
    missing: list[Path] = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, mode)


def _open_namespace(root_fd: int, namespace: str, perms: Perms, *, create: bool) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(namespace, perms.dir_mode, dir_fd=root_fd)
    fd = os.open(namespace, _DIR, dir_fd=root_fd)
    if create:
        _set_perms(fd, perms.dir_mode, perms)
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
            _set_perms(fd, self.perms.dir_mode, self.perms)
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
            _set_perms(fd, self.perms.dir_mode, self.perms)
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
