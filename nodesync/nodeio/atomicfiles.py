"""Files written atomically, with a fixed mode and owner: what every node agent writes through.

The bytes go to a temporary file in the same directory, get their mode, owner
and an fsync, and are renamed over the final name; the caller fsyncs the
directory once after its renames. A reader sees the old file or the new one,
never a partial one. Files are opened with O_NOFOLLOW: a planted symlink is
never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

FILE_MODE = 0o644
DIR_MODE = 0o744
TEMP_SUFFIX = ".tmp"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Perms:
    """The fixed mode and ownership of everything nodesync creates under the operator root."""

    uid: int
    gid: int
    file_mode: int = FILE_MODE
    dir_mode: int = DIR_MODE

    @classmethod
    def of_process(cls) -> Perms:
        return cls(uid=os.geteuid(), gid=os.getegid())


def temp_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def set_perms(fd: int, mode: int, perms: Perms) -> None:
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (perms.uid, perms.gid):
        os.fchown(fd, perms.uid, perms.gid)
    if st.st_mode & 0o7777 != mode:
        os.fchmod(fd, mode)


def write_atomically(
    dir_fd: int, name: str, content: bytes, perms: Perms, *, into: int | None = None
) -> None:
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
            set_perms(fd, perms.file_mode, perms)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` and its missing ancestors (never changing existing ones)."""
    missing: list[Path] = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, mode)


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
        make_dirs(base, mode)
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
