"""Tables for the webhook app that never change: the admission routes without watches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hooks.cluster.binding import table as binding_table
from hooks.cluster.recording import table as recording_table
from hooks.cluster.webhook.tables import Loaded


@dataclass
class FixedTables:
    binding: binding_table.BindingTable = field(default_factory=binding_table.BindingTable)
    recording: recording_table.RecordingTable = field(
        default_factory=recording_table.RecordingTable
    )
    loaded: bool = True

    def bindings(self) -> Loaded[binding_table.BindingTable]:
        return Loaded(self.binding, self.loaded)

    def recordings(self) -> Loaded[recording_table.RecordingTable]:
        return Loaded(self.recording, self.loaded)

    def ready(self) -> bool:
        return self.loaded


def from_files(bindings: Path | None = None, recordings: Path | None = None) -> FixedTables:
    """The tables of JSON fixtures (``table.json`` of a golden case), empty where not given."""
    return FixedTables(
        binding_table.decode(bindings.read_bytes()) if bindings else binding_table.EMPTY,
        recording_table.decode(recordings.read_bytes()) if recordings else recording_table.EMPTY,
    )
