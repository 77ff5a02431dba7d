"""Why a profile cannot be installed: a reason (reused in conditions, logs, metrics) and a
message."""

from __future__ import annotations


class ProfileProblem(Exception):
    """A permanent problem with the user's input: answered with an Error status, never retried."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
