"""Where the audit log was read up to, saved atomically with what the recorder holds."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodesync.enricher.recorder import Recorder

if TYPE_CHECKING:
    from nodesync.enricher.recordingagent import RecordingAgent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Position:
    device: int
    inode: int
    offset: int
    tail: str  # hex of up to FINGERPRINT bytes before offset


class StateFile:
    """The saved positions of a follower, written atomically (temp file, fsync, rename).

    One position per file still being read: rotated files not finished yet, then
    the file at the path (last).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load_document(self) -> dict[str, Any]:
        """The saved document ({} when there is none or it cannot be read)."""
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("ignoring the unreadable follower state %s: %s", self.path, error)
            return {}
        return document if isinstance(document, dict) else {}

    def load(self) -> tuple[Position, ...]:
        document = self.load_document()
        if not document:
            return ()
        try:
            return tuple(
                Position(
                    int(entry["device"]),
                    int(entry["inode"]),
                    int(entry["offset"]),
                    str(entry.get("tail", "")),
                )
                for entry in document["files"]
            )
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring the unreadable follower state %s: %s", self.path, error)
            return ()

    def document(self, positions: Sequence[Position]) -> dict[str, Any]:
        """What :meth:`save` writes (a subclass may add to it)."""
        return {"files": [asdict(position) for position in positions]}

    def save(self, positions: Sequence[Position]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = json.dumps(self.document(positions)).encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class RecorderState(StateFile):
    """The follower's positions, the recorder's traces and the recorded pods not finished yet,
    in one file written atomically: whatever a restart resumes from, it is one moment's."""

    def __init__(
        self, path: Path | str, recorder: Recorder, agent: RecordingAgent | None = None
    ) -> None:
        super().__init__(path)
        self.recorder = recorder
        self.agent = agent

    def document(self, positions: Any) -> dict[str, Any]:
        document = super().document(positions)
        document["recorded"] = self.recorder.snapshot()
        if self.agent is not None:
            document["pods"] = self.agent.snapshot()
        return document

    def restore(self) -> int:
        """Put the saved traces and pods back; how many containers the traces cover."""
        loaded = self.load_document()
        pods = loaded.get("pods")
        if self.agent is not None and isinstance(pods, list):
            self.agent.restore(pods)
        recorded = loaded.get("recorded")
        if not isinstance(recorded, dict):
            return 0
        return self.recorder.restore(recorded)
