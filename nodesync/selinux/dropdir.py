"""The CIL files in a policy drop directory (selinuxd's watched directory, or the batch
installer's).

A policy is written atomically and only when its bytes change: the temporary
file is written in a staging directory *inside* the drop directory (so the
rename stays on one filesystem) and renamed to ``<policy>.cil``. selinuxd
watches only the top of its directory, so it sees one create event for a
complete file and never a temporary file. Removing ``<policy>.cil`` makes
selinuxd remove the module.

The drop directory itself is opened without following a symbolic link: when it
is one, every operation raises ``UnsafeRoot`` (an ``OSError``) and nothing is
written or removed (its parents, set by the administrator, may be links).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from nodesync.nodeio.atomicfiles import FILE_MODE, TEMP_SUFFIX, Perms, open_root, write_atomically
from nodesync.selinux.policies import CIL_EXTENSION

log = logging.getLogger(__name__)

STAGING = ".spo-staging"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class DropDir:
    """Writes and removes ``<policy>.cil`` files in ``path``."""

    def __init__(self, path: Path | str, *, mode: int = FILE_MODE) -> None:
        self.path = Path(path)
        self.mode = mode

    def _open(self, *, create: bool) -> int | None:
        """The drop directory's descriptor (None when missing and not ``create``)."""
        return open_root(self.path, guarded=1, mode=0o755 if create else None)

    @contextlib.contextmanager
    def _fds(self) -> Iterator[tuple[int, int]]:
        drop = self._open(create=True)
        assert drop is not None
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(STAGING, 0o700, dir_fd=drop)
            staging = os.open(STAGING, _DIR | os.O_NOFOLLOW, dir_fd=drop)
            try:
                yield drop, staging
            finally:
                os.close(staging)
        finally:
            os.close(drop)

    def file(self, policy: str) -> Path:
        return self.path / (policy + CIL_EXTENSION)

    def read(self, policy: str) -> bytes | None:
        drop = self._open(create=False)
        if drop is None:
            return None
        try:
            fd = os.open(
                policy + CIL_EXTENSION, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=drop
            )
        except OSError:
            return None
        finally:
            os.close(drop)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def write(self, policy: str, content: bytes) -> bool:
        """Make ``<policy>.cil`` hold ``content``. Returns whether the file was written."""
        if self.read(policy) == content:
            return False
        name = policy + CIL_EXTENSION
        with self._fds() as (drop, staging):
            # Staged outside the watched folder: selinuxd would pick up a temporary file.
            perms = Perms(uid=os.geteuid(), gid=os.getegid(), file_mode=self.mode)
            write_atomically(staging, name, content, perms, into=drop)
            os.fsync(drop)
        return True

    def remove(self, policy: str) -> bool:
        """Remove ``<policy>.cil``. Returns whether there was one."""
        drop = self._open(create=False)
        if drop is None:
            return False
        try:
            try:
                os.unlink(policy + CIL_EXTENSION, dir_fd=drop)
            except FileNotFoundError:
                return False
            with contextlib.suppress(OSError):
                os.fsync(drop)
        finally:
            os.close(drop)
        return True

    def policies(self) -> set[str]:
        """The policies that have a file here (hidden files and temporaries excluded)."""
        drop = self._open(create=False)
        if drop is None:
            return set()
        try:
            names = os.listdir(drop)
        finally:
            os.close(drop)
        return {
            name.removesuffix(CIL_EXTENSION)
            for name in names
            if name.endswith(CIL_EXTENSION) and not name.startswith(".")
        }

    def clean_staging(self) -> None:
        """Remove temporaries a crash left behind."""
        with self._fds() as (_, staging):
            for name in os.listdir(staging):
                if name.endswith(TEMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=staging)

    def converge(
        self, wanted: dict[str, bytes], keep: Iterable[str] = ()
    ) -> tuple[set[str], set[str]]:
        """Write every wanted policy and remove every other file except ``keep``.

        Returns (written, removed) policy names.
        """
        self.clean_staging()
        written = {
            policy for policy, content in sorted(wanted.items()) if self.write(policy, content)
        }
        spare = set(keep)
        removed = {
            policy
            for policy in sorted(self.policies() - set(wanted) - spare)
            if self.remove(policy)
        }
        return written, removed


def checksum(content: bytes) -> str:
    return hashlib.sha512(content).hexdigest()
