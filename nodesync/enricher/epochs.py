"""Epochs of the hot path: counts kept by a record's field text are put under their pid's
owner (a pod's labels, a container) only when read; that holds while no pid of the epoch
changes owner (a pid reused by another pod or container)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeVar

Owner = TypeVar("Owner")

_NEW: Final = object()


def join(epoch: dict[str, Owner], owners: Mapping[str, Owner], end: Callable[[], None]) -> None:
    """Add a batch's pid -> owner to ``epoch``; when one of its pids now has another owner,
    ``end`` the epoch (which empties ``epoch``) and start the next with the batch's."""
    for pid, owner in owners.items():
        known = epoch.get(pid, _NEW)
        if known is _NEW:
            epoch[pid] = owner
        elif known != owner:
            end()
            epoch.update(owners)
            return
