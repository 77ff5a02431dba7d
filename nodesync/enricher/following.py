"""Follow a growing log file like ``tail -F``, and resume exactly where a previous run stopped.

- Only complete lines are delivered; a line being written is held back until its
  newline arrives.
- Rotation by rename (auditd's own rotation, ``kill -USR1``; logrotate's
  ``create``) is seen as a new inode at the path: the old file is read to its
  end first, then the new one from its beginning. The old file stays open for
  ``rotation_grace`` seconds more in case its writer still appends to it.
  If the file was rotated more than once between two looks, the rotated files
  that appeared meanwhile (and were never open) are read in between, oldest
  first by modification time (ties: by inode number).
- Truncation in place (logrotate's ``copytruncate``) is seen as the file being
  shorter than what was read, or as the bytes before the read position having
  changed (the file was truncated and has grown past it again); the file is then
  read from its beginning. Lines written between logrotate's copy and its
  truncate exist only in the copy: that is a race of copytruncate itself.
- The position (device, inode, byte offset and a fingerprint of the bytes just
  before the offset) of every file still being read (rotated files not finished
  yet, then the current one) is saved in a small JSON state file, replaced
  atomically.
  A restart resumes at the saved offset if the file is the same one; if it was
  rotated meanwhile, the rest of the old file is read first when it is still
  next to it (``audit.log.1``, ``audit.log-20240101``), then the new file from
  its beginning. A fresh start (no state) begins at the end of the file.

Delivery is in batches (the lines of one read). A batch counts as consumed
when the caller asks for the next one (or calls :meth:`Follower.commit`), so
the saved offset never covers lines the caller has not finished with.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from nodesync.enricher.state import Position, StateFile

log = logging.getLogger(__name__)

FINGERPRINT: Final = 64  # bytes before the offset that identify the content read so far
_COMPRESSED: Final = (".gz", ".xz", ".bz2", ".zst", ".lz4")


# A line longer than this is dropped (and counted): an audit record is at most 8,970 bytes
# (the kernel's MAX_AUDIT_MESSAGE_LENGTH), a few times that with auditd's enrichment. Without
# a cap, a file without newlines would be held (and copied) whole.
MAX_LINE = 64 * 1024


class _Open:
    """One open file being read: what is consumed, what is read ahead, and its fingerprint."""

    def __init__(self, fd: int, device: int, inode: int, offset: int, tail: bytes) -> None:
        self.fd = fd
        self.device = device
        self.inode = inode
        self.offset = offset  # end of the lines the caller consumed
        self.pending = offset  # end of the lines delivered (consumed once committed)
        self.pending_tail = tail
        self.tail = tail  # the bytes just before offset
        self.buffer = b""  # read beyond pending: an incomplete line (at most max_line bytes)
        self.skipping = False  # in a line longer than max_line: dropped up to its newline
        self.retire_at: float | None = None

    @property
    def read_at(self) -> int:
        return self.pending + len(self.buffer)

    def close(self) -> None:
        os.close(self.fd)


def _may_hold_longer(text: str, length: int) -> bool:
    """Whether a line of ``text`` may be longer than ``length``: one is, if it is, only where an
    aligned piece of half that length holds no newline (a find each, a few per batch; a split
    and a ``len`` per line only then)."""
    piece = max(1, length // 2)
    find = text.find
    return any(find("\n", at, at + piece) < 0 for at in range(0, len(text) - piece + 1, piece))


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class Follower:
    """Follows ``path``; see the module documentation for the guarantees."""

    def __init__(
        self,
        path: Path | str,
        state: StateFile | None = None,
        *,
        poll_interval: float = 0.1,
        chunk_size: int = 1 << 20,
        max_line: int = MAX_LINE,
        checkpoint_interval: float = 1.0,
        rotation_grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.state = state
        self.poll_interval = poll_interval
        self.chunk_size = chunk_size
        self.max_line = max_line
        self.checkpoint_interval = checkpoint_interval
        self.rotation_grace = rotation_grace
        self._clock = clock
        self._current: _Open | None = None
        self._retired: list[_Open] = []
        # rotated files that were there before the current file was opened, and every
        # file opened so far: neither is a file missed between two looks at the path
        self._known: set[tuple[int, int]] = set()
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._started = False
        self._saved: tuple[Position, ...] = ()
        self._last_checkpoint = clock()
        self.rotations = 0
        self.truncations = 0
        self.long_lines = 0  # lines longer than max_line, dropped
        self._start()  # the position of a fresh start is the end of the file now

    # -- opening -----------------------------------------------------------

    def _open(self) -> _Open | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        stat = os.fstat(fd)
        self._remember(_identity(stat))
        return _Open(fd, stat.st_dev, stat.st_ino, 0, b"")

    def _remember(self, identity: tuple[int, int]) -> None:
        self._seen[identity] = None
        if len(self._seen) > 1024:
            self._seen.popitem(last=False)

    def _start(self) -> None:
        """The first open: at the saved positions, or at the end on a fresh start."""
        self._started = True
        saved = self.state.load() if self.state is not None else ()
        known = self._known_siblings()
        current = self._open()
        self._current = current
        self._known = known
        if not saved:
            if current is not None:
                self._seek_end(current)
            return
        *older, last = saved
        now = self._clock()
        for position in older:  # rotated files that were not finished
            self._resume_rotated(position, now)
        if current is not None and (current.device, current.inode) == (last.device, last.inode):
            tail = bytes.fromhex(last.tail)
            if self._matches(current.fd, last.offset, tail):
                self._place(current, last.offset, tail)
            else:
                self.truncations += 1
                log.warning(
                    "%s changed while stopped (truncated or replaced): reading it from its "
                    "beginning",
                    self.path,
                )
        else:
            old = self._resume_rotated(last, now)
            if old is not None:
                exclude = {(opened.device, opened.inode) for opened in self._retired}
                if current is not None:
                    exclude.add((current.device, current.inode))
                missed, _ = self._missed(exclude, os.fstat(old.fd).st_mtime_ns)
                self._retired.extend(missed)

    def _resume_rotated(self, position: Position, now: float) -> _Open | None:
        """Finish a file that was renamed away from the path, from its saved offset."""
        old = self._find_rotated(position.device, position.inode)
        tail = bytes.fromhex(position.tail)
        if old is None or not self._matches(old.fd, position.offset, tail):
            if old is not None:
                old.close()
            log.warning(
                "%s was rotated while stopped and the old file is gone: records after the "
                "saved offset may be lost",
                self.path,
            )
            return None
        self._place(old, position.offset, tail)
        old.retire_at = now
        self._retired.append(old)
        log.info("%s was rotated while stopped: finishing the rotated file first", self.path)
        return old

    def _place(self, opened: _Open, offset: int, tail: bytes) -> None:
        opened.offset = opened.pending = offset
        opened.tail = opened.pending_tail = tail

    @staticmethod
    def _matches(fd: int, offset: int, tail: bytes) -> bool:
        if os.fstat(fd).st_size < offset:
            return False
        if not tail:
            return True  # nothing to compare (an offset of 0, or an old state file)
        return os.pread(fd, len(tail), offset - len(tail)) == tail

    def _seek_end(self, opened: _Open) -> None:
        """At the end of the last complete line (a partial last line is delivered once complete)."""
        size = os.fstat(opened.fd).st_size
        start = max(0, size - (1 << 16))
        block = os.pread(opened.fd, size - start, start)
        newline = block.rfind(b"\n")
        end = start + newline + 1 if newline >= 0 else start
        prefix = os.pread(opened.fd, min(FINGERPRINT, end), end - min(FINGERPRINT, end))
        self._place(opened, end, prefix)

    def _siblings(self) -> list[tuple[Path, os.stat_result]]:
        """The rotated files next to the path (``audit.log.1``, ``audit.log-20240101``...)."""
        stem = self.path.name
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            return []
        found: list[tuple[Path, os.stat_result]] = []
        for name in sorted(names):
            if not name.startswith((stem + ".", stem + "-")) or name.endswith(_COMPRESSED):
                continue
            candidate = self.path.parent / name
            try:
                found.append((candidate, candidate.stat()))
            except OSError:
                continue
        return found

    def _open_sibling(self, path: Path, identity: tuple[int, int]) -> _Open | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        if _identity(os.fstat(fd)) != identity:  # renamed again meanwhile
            os.close(fd)
            return None
        self._remember(identity)
        return _Open(fd, identity[0], identity[1], 0, b"")

    def _find_rotated(self, device: int, inode: int) -> _Open | None:
        for path, stat in self._siblings():
            if _identity(stat) == (device, inode):
                return self._open_sibling(path, (device, inode))
        return None

    def _missed(
        self, exclude: set[tuple[int, int]], newer_than: int | None, new: _Open | None = None
    ) -> tuple[list[_Open], bool]:
        """Rotated files never read: written, renamed and replaced between two looks at the path.

        A sibling is one if it was not there when the file being read was opened
        (``exclude`` holds those), or, after a restart, if it changed no earlier than
        the file the saved position is in (``newer_than``, ns). If ``new`` (just
        opened at the path) has itself been renamed already, it takes its place
        among them, and the second value is True. They are ordered by modification
        time (ties: by inode number, which grows as files are made on most filesystems).
        """
        new_identity = (new.device, new.inode) if new is not None else None
        found: list[tuple[int, int, int, Path, tuple[int, int]]] = []
        for path, stat in self._siblings():
            identity = _identity(stat)
            if identity != new_identity and (
                identity in exclude or (newer_than is not None and stat.st_mtime_ns < newer_than)
            ):
                continue
            found.append((stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, path, identity))
        opened: list[_Open] = []
        renamed = False
        now = self._clock()
        for *_, path, identity in sorted(found):
            if new is not None and identity == new_identity:
                new.retire_at = now
                opened.append(new)
                renamed = True
                continue
            missed = self._open_sibling(path, identity)
            if missed is not None:
                log.warning(
                    "%s was rotated more than once between reads: reading %s too", self.path, path
                )
                missed.retire_at = now
                opened.append(missed)
        return opened, renamed

    def _known_siblings(self) -> set[tuple[int, int]]:
        return {_identity(stat) for _, stat in self._siblings()}

    # -- reading -----------------------------------------------------------

    def _read(self, opened: _Open, final: bool = False) -> str | None:
        """Complete lines available in ``opened`` (all the rest, partial line too, if ``final``),
        joined by newlines (the last one's left out); None when there is none."""
        size = os.fstat(opened.fd).st_size
        read_at = opened.read_at
        seen = (opened.pending_tail + opened.buffer)[-FINGERPRINT:]
        if size < read_at or (
            size > read_at and seen and os.pread(opened.fd, len(seen), read_at - len(seen)) != seen
        ):
            self.truncations += 1
            log.warning("%s was truncated: reading it from its beginning", self.path)
            opened.offset = opened.pending = 0
            opened.tail = opened.pending_tail = b""
            opened.buffer = b""
            read_at = 0
        data = opened.buffer
        at_end = True
        if size > read_at:
            chunk = os.pread(opened.fd, min(self.chunk_size, size - read_at), read_at)
            at_end = read_at + len(chunk) >= size
            if opened.skipping:  # the rest of a line too long: up to its newline
                end = chunk.find(b"\n")
                self._drop(opened, chunk if end < 0 else chunk[: end + 1])
                if end < 0:
                    return None
                opened.skipping = False
                chunk = chunk[end + 1 :]
            data += chunk  # the buffer holds at most max_line bytes: no quadratic rebuilding
        newline = data.rfind(b"\n")
        unfinished = final and at_end and bool(data) and newline != len(data) - 1
        if unfinished:
            newline = len(data)  # the last line will never be finished: deliver it as it is
        if newline < 0:
            if len(data) > self.max_line:
                self._too_long(opened, data)
            else:
                opened.buffer = data
            return None
        complete = memoryview(data)[:newline]  # decoded below without a copy
        opened.buffer = b""
        opened.pending += len(complete) if unfinished else newline + 1
        opened.pending_tail = (
            opened.pending_tail + data[max(0, newline + 1 - FINGERPRINT) : newline + 1]
        )[-FINGERPRINT:]
        rest = data[newline + 1 :]
        if len(rest) > self.max_line:
            self._too_long(opened, rest)
        else:
            opened.buffer = rest
        text = str(complete, "utf-8", "replace")
        if len(complete) > self.max_line and _may_hold_longer(text, self.max_line):
            lines = text.split("\n")
            if max(map(len, lines)) > self.max_line:  # a line too long, read whole in one chunk
                kept = [line for line in lines if len(line) <= self.max_line]
                self._count_long(len(lines) - len(kept))
                if not kept:
                    return None
                text = "\n".join(kept)
        return text

    def _drop(self, opened: _Open, dropped: bytes) -> None:
        """Pass over ``dropped``, the bytes that follow what was delivered (part of a long line)."""
        opened.pending += len(dropped)
        opened.pending_tail = (opened.pending_tail + dropped[-FINGERPRINT:])[-FINGERPRINT:]

    def _too_long(self, opened: _Open, partial: bytes) -> None:
        """``partial`` starts a line longer than max_line: drop it and the rest of that line."""
        opened.buffer = b""
        self._drop(opened, partial)
        opened.skipping = True
        self._count_long(1)

    def _count_long(self, count: int) -> None:
        if count:
            self.long_lines += count
            log.warning(
                "%s: dropped %d lines longer than %d bytes (%d so far)",
                self.path,
                count,
                self.max_line,
                self.long_lines,
            )

    def _rotated(self) -> bool:
        """Whether the path now names another file than the one being read."""
        current = self._current
        if current is None:
            return False
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, the new file is not there yet: keep reading the old one
        return _identity(stat) != (current.device, current.inode)

    def poll(self) -> list[str]:
        """One step: the complete lines that can be read now (possibly none). Not thread-safe."""
        text = self.poll_text()
        return [] if text is None else text.split("\n")

    def poll_text(self) -> str | None:
        """:meth:`poll`'s lines joined by newlines (the last one's left out), None when there is
        none: the lines of a read as they were decoded, never split (the log enricher's hot path
        reads a batch whole)."""
        if not self._started:
            self._start()
        self.commit()
        now = self._clock()
        for old in list(self._retired):
            text = self._read(old, final=old.retire_at is not None and now >= old.retire_at)
            if text is not None:
                return text
            if old.retire_at is not None and now >= old.retire_at:
                old.close()
                self._retired.remove(old)
        if self._current is None:  # not there at the start, or renamed as soon as opened
            if not self._switch(now):
                return None
            return self.poll_text()  # rotated files never read first, then the new one
        text = self._read(self._current)
        if text is not None:
            return text
        if self._rotated():
            text = self._read(self._current, final=False)
            if text is not None:
                return text  # not finished with the old file yet
            old = self._current
            queued = len(self._retired)
            if self._switch(now):
                old.retire_at = now + self.rotation_grace
                self._retired.insert(queued, old)  # before the files rotated after it
                self.rotations += 1
                log.info("%s was rotated: following the new file", self.path)
                return self.poll_text()  # the rotated files never read first, then the new one
        return None

    def _switch(self, now: float) -> bool:
        """Open the file at the path from its beginning; queue rotated files never read."""
        known = self._known_siblings()  # before the open: all rotated before the new file
        new = self._open()
        if new is None:
            return False
        missed, renamed = self._missed(self._known | set(self._seen), None, new)
        self._retired.extend(missed)
        self._current = None if renamed else new  # renamed already: open the path again
        self._known = known
        return True

    def commit(self) -> None:
        """The lines delivered so far are consumed: the saved position may cover them."""
        for opened in (*self._retired, self._current):
            if opened is not None:
                opened.offset = opened.pending
                opened.tail = opened.pending_tail

    @property
    def positions(self) -> tuple[Position, ...]:
        """The consumed positions (rotated files being finished, then the current file)."""
        return tuple(
            Position(opened.device, opened.inode, opened.offset, opened.tail.hex())
            for opened in (*self._retired, self._current)
            if opened is not None
        )

    @property
    def position(self) -> Position | None:
        """The consumed position in the file at the path."""
        current = self._current
        if current is None:
            return None
        return Position(current.device, current.inode, current.offset, current.tail.hex())

    def checkpoint(self) -> None:
        """Save the consumed positions now (if they changed)."""
        positions = self.positions
        if self.state is None or not positions or positions == self._saved:
            return
        self.state.save(positions)
        self._saved = positions
        self._last_checkpoint = self._clock()

    def maybe_checkpoint(self) -> None:
        """Save the positions if the last save is ``checkpoint_interval`` old."""
        if self._clock() - self._last_checkpoint >= self.checkpoint_interval:
            self.checkpoint()

    def batches(self, stop: threading.Event) -> Iterator[list[str]]:
        """Batches of lines until ``stop`` is set; saves the position on the way and at the end."""
        try:
            while not stop.is_set():
                batch = self.poll()
                if batch:
                    yield batch
                    self.commit()
                    self.maybe_checkpoint()
                else:
                    self.maybe_checkpoint()
                    stop.wait(self.poll_interval)
        finally:
            self.checkpoint()
            self.close()

    def lines(self, stop: threading.Event) -> Iterator[str]:
        """Line by line (a batch is consumed when the line after its last is asked for)."""
        for batch in self.batches(stop):
            yield from batch

    def close(self) -> None:
        for opened in (*self._retired, self._current):
            if opened is not None:
                opened.close()
        self._retired = []
        self._current = None
        self._started = False
