"""The states a profile goes through, shared by every profile kind and the node statuses."""

from __future__ import annotations

from enum import StrEnum


class ProfileState(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    INSTALLED = "Installed"
    TERMINATING = "Terminating"
    ERROR = "Error"
    PARTIAL = "Partial"
    DISABLED = "Disabled"


# Lower index = worse. The overall state of a profile is the lowest of its node states.
_ORDER = [
    ProfileState.ERROR,
    ProfileState.TERMINATING,
    ProfileState.PARTIAL,
    ProfileState.DISABLED,
    ProfileState.PENDING,
    ProfileState.IN_PROGRESS,
    ProfileState.INSTALLED,
]


def lowest(states: list[ProfileState]) -> ProfileState | None:
    """The least advanced of ``states`` (Error wins over everything), or None if empty."""
    return min(states, key=_ORDER.index) if states else None
